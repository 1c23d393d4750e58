package optim

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

func TestSchedules(t *testing.T) {
	cos := Cosine{Peak: 1e-3, Min: 1e-4, Steps: 100}
	warm := Warmup{Steps: 10, Then: cos}
	for _, c := range []struct {
		name string
		s    Schedule
		step int
		want float64
	}{
		{"constant", Constant{Peak: 3e-4}, 0, 3e-4},
		{"constant", Constant{Peak: 3e-4}, 12345, 3e-4},
		{"cosine start", cos, 0, 1e-3},
		// (1+cos(π/4))/2 = 0.85355339059327373
		{"cosine quarter", cos, 25, 1e-4 + 9e-4*0.85355339059327373},
		{"cosine half", cos, 50, 5.5e-4},
		// (1+cos(3π/4))/2 = 0.14644660940672627
		{"cosine three quarters", cos, 75, 1e-4 + 9e-4*0.14644660940672627},
		{"cosine end", cos, 100, 1e-4},
		{"cosine after end", cos, 1000, 1e-4},
		{"warmup first", warm, 0, 1e-4},
		{"warmup middle", warm, 4, 5e-4},
		{"warmup last", warm, 9, 1e-3},
		{"after warmup", warm, 10, 1e-3},
		{"after warmup half", warm, 60, 5.5e-4},
		{"after warmup end", warm, 110, 1e-4},
		{"warmup constant", Warmup{Steps: 4, Then: Constant{Peak: 2}}, 1, 1},
		{"warmup constant after", Warmup{Steps: 4, Then: Constant{Peak: 2}}, 7, 2},
	} {
		if got := c.s.LR(c.step); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("%s: LR(%d) = %.17g, want %.17g", c.name, c.step, got, c.want)
		}
	}
	mustPanic(t, "negative step", func() { cos.LR(-1) })
}

func TestScheduleConfig(t *testing.T) {
	s, err := ScheduleConfig{Kind: "Cosine", Peak: 1e-3, Min: 1e-4, Warmup: 10, Total: 110}.Build()
	if err != nil {
		t.Fatal(err)
	}
	want := Warmup{Steps: 10, Then: Cosine{Peak: 1e-3, Min: 1e-4, Steps: 100}}
	if s != Schedule(want) {
		t.Errorf("Build = %#v, want %#v", s, want)
	}
	s, err = ScheduleConfig{Kind: "constant", Peak: 5e-5}.Build()
	if err != nil || s != Schedule(Constant{Peak: 5e-5}) {
		t.Errorf("constant: %#v, %v", s, err)
	}
	for _, c := range []ScheduleConfig{
		{Kind: "linear", Peak: 1e-3},
		{Kind: "constant", Peak: 0},
		{Kind: "constant", Peak: math.NaN()},
		{Kind: "constant", Peak: 1e-3, Warmup: -1},
		{Kind: "cosine", Peak: 1e-3, Min: 2e-3, Total: 10},
		{Kind: "cosine", Peak: 1e-3, Min: -1, Total: 10},
		{Kind: "cosine", Peak: 1e-3, Warmup: 10, Total: 10},
	} {
		if _, err := c.Build(); err == nil {
			t.Errorf("Build accepted %+v", c)
		}
	}
}

// CosineAnnealing is PyTorch's CosineAnnealingLR, past T_max too, as
// tools/trlx-reference.py ran it (testdata/trlx/lr_schedule.json): the
// paper's 410m schedule over its 12,000 steps and the 70m one whose η_min
// lies above its lr.
func TestCosineAnnealingMatchesPyTorch(t *testing.T) {
	b, err := os.ReadFile("../testdata/trlx/lr_schedule.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Cases []struct {
			BaseLR float64 `json:"base_lr"`
			TMax   int     `json:"T_max"`
			EtaMin float64 `json:"eta_min"`
			Rows   []struct {
				Step      int
				Recursive float64
			}
		}
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) < 2 {
		t.Fatalf("%d cases", len(ref.Cases))
	}
	for _, c := range ref.Cases {
		s := CosineAnnealing{Peak: c.BaseLR, Min: c.EtaMin, TMax: c.TMax}
		for _, r := range c.Rows {
			if got := s.LR(r.Step); math.Abs(got-r.Recursive) > 1e-6*math.Abs(r.Recursive)+1e-18 {
				t.Errorf("T_max %d, step %d: %v, PyTorch %v", c.TMax, r.Step, got, r.Recursive)
			}
		}
	}
}

func TestLinear(t *testing.T) {
	s, err := ScheduleConfig{Kind: "linear", Peak: 1, Min: 0.2, Total: 4}.Build()
	if err != nil {
		t.Fatal(err)
	}
	for step, want := range []float64{1, 0.8, 0.6, 0.4, 0.2, 0.2} {
		if got := s.LR(step); math.Abs(got-want) > 1e-15 {
			t.Errorf("step %d: %v, want %v", step, got, want)
		}
	}
}
