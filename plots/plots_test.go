package plots

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
)

func decode(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

func is(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 == uint32(want.R) && g>>8 == uint32(want.G) && b>>8 == uint32(want.B)
}

func white(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 >= 250 && g>>8 >= 250 && b>>8 >= 250
}

// TestPlotLayout fills the whole data range with one colour and gives the
// legend a thumbnail of another: every legend pixel must lie right of every
// data pixel, and a band along each edge must stay blank (the title and
// the last x tick label, at the axis end, not cut).
func TestPlotLayout(t *testing.T) {
	data := color.RGBA{0xff, 0, 0, 0xff}
	thumb := color.RGBA{0, 0xff, 0, 0xff}
	f := New("A title that should not touch the top", "x", "y")
	poly, err := plotter.NewPolygon(plotter.XYs{{X: 0, Y: 0}, {X: 1000, Y: 0}, {X: 1000, Y: 1}, {X: 0, Y: 1}})
	if err != nil {
		t.Fatal(err)
	}
	poly.Color, poly.LineStyle.Width = data, 0
	f.Add(poly)
	l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		t.Fatal(err)
	}
	l.Color = thumb
	f.AddLegend("a legend entry long enough to matter", l) // not plotted: only the legend has this colour
	path := filepath.Join(t.TempDir(), "f.png")
	if err := f.Save(path, 5, 3.5); err != nil {
		t.Fatal(err)
	}
	img := decode(t, path)
	b := img.Bounds()
	maxData, minThumb := -1, b.Max.X
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			if is(c, data) {
				maxData = max(maxData, x)
			}
			if is(c, thumb) {
				minThumb = min(minThumb, x)
			}
			band := 4
			if (x < b.Min.X+band || x >= b.Max.X-band || y < b.Min.Y+band || y >= b.Max.Y-band) && !white(c) {
				t.Fatalf("pixel (%d, %d) in the blank band along the edge is %v", x, y, c)
			}
		}
	}
	if maxData < 0 || minThumb == b.Max.X {
		t.Fatalf("data drawn to x %d, legend from %d: one is missing", maxData, minThumb)
	}
	if minThumb <= maxData {
		t.Errorf("legend starts at x %d, inside the data, which reach x %d", minThumb, maxData)
	}
}

func TestPlotPanels(t *testing.T) {
	dir := t.TempDir()
	var figs []*Figure
	for k := range 3 {
		f := New("panel", "x", "y")
		s := Series{X: []float64{0, 1, 2}, Y: []float64{0, float64(k), 1}}
		if k == 2 {
			s.Name = "only the last has a legend"
		}
		if err := Lines(f, s); err != nil {
			t.Fatal(err)
		}
		figs = append(figs, f)
	}
	path := filepath.Join(dir, "row.png")
	if err := SavePanels(path, 12, 4, 3, figs...); err != nil {
		t.Fatal(err)
	}
	if b := decode(t, path).Bounds(); b.Dx() <= b.Dy() {
		t.Errorf("three panels in a row: %v", b)
	}
	grid := filepath.Join(dir, "grid.png")
	if err := SavePanels(grid, 8, 6, 2, figs[0], nil, figs[1]); err != nil {
		t.Fatal(err)
	}
	decode(t, grid)
	if err := SavePanels(filepath.Join(dir, "x.png"), 1, 4, 3, figs...); err == nil {
		t.Error("three panels in one inch")
	}
	if err := SavePanels(filepath.Join(dir, "x.png"), 8, 4, 0, figs...); err == nil {
		t.Error("zero columns accepted")
	}
}

// Series that share a colour differ in marker and dashes.
func TestPlotSeriesStyles(t *testing.T) {
	for i := range 3 * len(Palette) {
		for j := i + 1; j < 3*len(Palette); j++ {
			if Color(i) != Color(j) {
				continue
			}
			if markers[i%len(markers)] == markers[j%len(markers)] || reflect.DeepEqual(dashes(i), dashes(j)) {
				t.Errorf("series %d and %d share colour, and marker or dashes", i, j)
			}
		}
	}
}

// Tick labels carry no zeros that say nothing ("750.00"), and keep the
// decimals that tell ticks apart.
func TestTickLabels(t *testing.T) {
	var ticker plot.Ticker = Ticks{}
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{
		{0, 750, "0 250 500 750"},
		{0, 1, "0.0 0.5 1.0"},
		{0, 10, "0 5 10"},
		{-0.3, 0.3, "-0.25 0.00 0.25"},
		{0, 1e-9, "0 5e-10 1e-09"},
	} {
		var got []string
		for _, tk := range ticker.Ticks(c.lo, c.hi) {
			if tk.Label != "" {
				got = append(got, tk.Label)
			}
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("[%v, %v]: %q, want %q", c.lo, c.hi, got, c.want)
		}
	}
}

// A constant curve gets a range about its value, so its ticks read it,
// rather than gonum's ±1 around it.
func TestConstantCurveRange(t *testing.T) {
	f := New("β", "step", "β")
	if err := Lines(f, Series{X: []float64{1, 2, 3}, Y: []float64{0.035, 0.035, 0.035}}); err != nil {
		t.Fatal(err)
	}
	if f.Y.Min <= 0 || f.Y.Max >= 0.1 || !(f.Y.Min < 0.035 && 0.035 < f.Y.Max) {
		t.Errorf("y range [%v, %v] for a constant 0.035", f.Y.Min, f.Y.Max)
	}
}
