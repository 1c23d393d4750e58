package policy_test

import (
	"fmt"

	"irl/neox"
	"irl/onnx"
	"irl/policy"
)

// The package example, run: a forward pass over three tokens of the tiny
// fixture model.
func Example() {
	if err := onnx.Init(""); err != nil {
		fmt.Println(err)
		return
	}
	m, err := neox.Load("../testdata/tiny-neox-parallel")
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := policy.NewRunner(m, neox.ForwardOptions{Logits: true}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Destroy()
	out, err := r.Forward(&neox.Batch{B: 1, S: 3, InputIDs: []int64{51, 310, 85}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out[neox.LogitsOutput].Shape)
	// Output: [1 3 512]
}
