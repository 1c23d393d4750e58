package toxeval

import (
	"reflect"
	"testing"
)

// The generator and the shuffle match numpy's published outputs.
func TestPermutationMatchesNumpy(t *testing.T) {
	if got := newMT19937(5489).next(); got != 3499211612 {
		t.Errorf("MT19937(5489) first output %d, want 3499211612", got)
	}
	if got := newMT19937(0).next(); got != 2357136044 {
		t.Errorf("MT19937(0) first output %d, want 2357136044", got)
	}
	// np.random.RandomState(0).permutation(10), (42).permutation(10)
	if got, want := Permutation(10, 0), []int{2, 8, 4, 9, 1, 6, 7, 3, 0, 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("permutation(10) seed 0: %v, want %v", got, want)
	}
	if got, want := Permutation(10, 42), []int{8, 1, 5, 0, 7, 2, 9, 4, 3, 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("permutation(10) seed 42: %v, want %v", got, want)
	}
}
