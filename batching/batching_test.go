package batching

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSorted(t *testing.T) {
	lengths := []int{5, 1, 3, 1, 4}
	var got []string
	err := Sorted(lengths, 2, func(rows []int, longest int) error {
		got = append(got, fmt.Sprint(rows, longest))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[1 3] 1,[2 4] 4,[0] 5"; strings.Join(got, ",") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	err = Sorted(lengths, 2, func(rows []int, longest int) error {
		if longest == 4 {
			return errors.New("boom")
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "rows 2…3 (length 4): boom") {
		t.Errorf("error %v", err)
	}
}

func TestRightPad(t *testing.T) {
	ids, mask := RightPad([][]int64{{7, 8, 9}, {4}}, []int{1, 0}, 3, 1)
	if fmt.Sprint(ids) != "[4 1 1 7 8 9]" || fmt.Sprint(mask) != "[1 0 0 1 1 1]" {
		t.Errorf("ids %v mask %v", ids, mask)
	}
}
