package rewardhead

import (
	"bytes"
	"encoding/json"
	"math"
)

// Value is a metric that may be undefined, such as a precision with no
// positive predictions or a correlation with a constant input. An undefined
// Value encodes as JSON null and carries the reason, so NaN never reaches a
// report.
type Value struct {
	// X is the value when defined.
	X float64
	// Why is empty when the value is defined and the reason otherwise.
	Why string
}

// Defined wraps a finite number. It panics on NaN or ±Inf, which would mean
// a metric failed to detect its own undefined case.
func Defined(x float64) Value {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		panic("rewardhead: metric value is not finite")
	}
	return Value{X: x}
}

// Undefined is a metric that has no value, for the reason given.
func Undefined(why string) Value {
	if why == "" {
		why = "undefined"
	}
	return Value{Why: why}
}

// OK reports whether v is defined.
func (v Value) OK() bool { return v.Why == "" }

// MarshalJSON encodes a defined value as a number and an undefined one as
// null.
func (v Value) MarshalJSON() ([]byte, error) {
	if !v.OK() {
		return []byte("null"), nil
	}
	return json.Marshal(v.X)
}

// UnmarshalJSON decodes a number, or null as an undefined value whose
// reason is "null in JSON".
func (v *Value) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*v = Undefined("null in JSON")
		return nil
	}
	*v = Value{}
	return json.Unmarshal(b, &v.X)
}
