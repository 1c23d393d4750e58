package toy

import "testing"

// The one-line summary gives the mean over seeds, with the sample standard
// deviation, not the first seed's numbers.
func TestSummaryAveragesSeeds(t *testing.T) {
	r := &Result{Seeds: []SeedResult{
		{Table1: Table1{Precision: 1, Recall: 0.9, KendallTau: 0.5, Separation: 1}},
		{Table1: Table1{Precision: 0.8, Recall: 1, KendallTau: 0.3, Separation: 0.9}},
	}}
	want := "Table 1: precision 0.900 ± 0.141, recall 0.950 ± 0.071, τ 0.400 ± 0.141, separation 0.950 ± 0.071 over 2 seeds"
	if got := r.Summary(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	r.Seeds = r.Seeds[:1]
	if got, want := r.Summary(), "Table 1: precision 1.000, recall 0.900, τ 0.500, separation 1.000"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
