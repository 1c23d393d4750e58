package analysis

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"irl/atomicfile"
	"irl/rewardhead"
)

// Colours for the two classes, kept fixed across plots so a reader learns
// them once.
var (
	nonToxicColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	toxicColor    = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// maxAxis bounds the values a plot axis may span. gonum/plot's tick
// placement loops without end when an axis range overflows float64, and
// panics when the ends of a range are equal after its own ±1 widening,
// which happens to any constant data beyond 2^53.
const maxAxis = 1e300

// saneAxes refuses axes gonum/plot cannot draw and widens degenerate ones.
func saneAxes(p *plot.Plot) error {
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		if a.Min > a.Max {
			continue // no data: gonum/plot draws an empty axis
		}
		if !(math.Abs(a.Min) <= maxAxis && math.Abs(a.Max) <= maxAxis) {
			return fmt.Errorf("cannot plot values from %g to %g: an axis can show at most ±%g", a.Min, a.Max, maxAxis)
		}
		if mid := a.Min/2 + a.Max/2; a.Max-a.Min <= 1e-12*math.Abs(mid) {
			pad := math.Max(1, 1e-3*math.Abs(mid))
			a.Min, a.Max = mid-pad, mid+pad
		}
	}
	return nil
}

// savePNG renders p to path through a temporary file.
func savePNG(p *plot.Plot, path string, w, h vg.Length) error {
	if err := saneAxes(p); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	wt, err := p.WriterTo(w, h, "png")
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return atomicfile.Write(path, func(f io.Writer) error {
		_, err := wt.WriteTo(f)
		return err
	})
}

// PlotScatter writes a scatter of IRL reward against ground-truth reward,
// one colour per class, as in the paper's Figure 1. Dashed lines at ground
// truth 0 and at the IRL threshold split it into the quadrants of the
// agreement table.
func PlotScatter(path string, irlPos, irlNeg, gtPos, gtNeg []float64, threshold float64) error {
	p := plot.New()
	p.Title.Text = "IRL reward vs ground-truth reward"
	p.X.Label.Text = "ground-truth reward"
	p.Y.Label.Text = "IRL reward"
	for _, c := range []struct {
		name     string
		irl, gt  []float64
		colour   color.Color
		glyphRad vg.Length
	}{{"non-toxic (--pos)", irlPos, gtPos, nonToxicColor, 1.5}, {"toxic (--neg)", irlNeg, gtNeg, toxicColor, 1.5}} {
		xy := make(plotter.XYs, len(c.irl))
		for i := range xy {
			xy[i] = plotter.XY{X: c.gt[i], Y: c.irl[i]}
		}
		s, err := plotter.NewScatter(xy)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		s.GlyphStyle.Color = c.colour
		s.GlyphStyle.Radius = c.glyphRad
		s.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(s)
		p.Legend.Add(c.name, s)
	}
	gt, irl := concat(gtPos, gtNeg), concat(irlPos, irlNeg)
	for _, seg := range []plotter.XYs{
		{{X: 0, Y: slices.Min(irl)}, {X: 0, Y: slices.Max(irl)}},
		{{X: slices.Min(gt), Y: threshold}, {X: slices.Max(gt), Y: threshold}},
	} {
		l, err := plotter.NewLine(seg)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return savePNG(p, path, 6*vg.Inch, 5*vg.Inch)
}

// PlotDistributions writes violins (Gaussian kernel densities, mirrored)
// with box plots inside for the two classes' rewards, and a dashed line at
// the threshold.
func PlotDistributions(path string, pos, neg []float64, threshold float64) error {
	p := plot.New()
	p.Title.Text = "Reward by class"
	p.Y.Label.Text = "reward"
	for k, c := range []struct {
		v      []float64
		colour color.Color
	}{{pos, nonToxicColor}, {neg, toxicColor}} {
		x := float64(k)
		ys, dens := KDE(c.v, 128)
		peak := slices.Max(dens)
		var right, left plotter.XYs
		for i := range ys {
			wdt := 0.0
			if peak > 0 {
				wdt = 0.4 * dens[i] / peak
			}
			right = append(right, plotter.XY{X: x + wdt, Y: ys[i]})
			left = append(left, plotter.XY{X: x - wdt, Y: ys[i]})
		}
		slices.Reverse(left)
		poly, err := plotter.NewPolygon(append(right, left...))
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		r, g, b, _ := c.colour.RGBA()
		poly.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 0x60}
		poly.LineStyle.Color = c.colour
		p.Add(poly)
		box, err := plotter.NewBoxPlot(vg.Points(12), x, plotter.Values(c.v))
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		box.FillColor = color.White
		p.Add(box)
	}
	lo, hi := math.Min(slices.Min(pos), slices.Min(neg)), math.Max(slices.Max(pos), slices.Max(neg))
	if threshold >= lo-(hi-lo) && threshold <= hi+(hi-lo) {
		l, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: threshold}, {X: 1.5, Y: threshold}})
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("threshold %.3g", threshold), l)
	}
	p.X.Min, p.X.Max = -0.6, 1.6
	p.X.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: fmt.Sprintf("non-toxic (n=%d)", len(pos))}, {Value: 1, Label: fmt.Sprintf("toxic (n=%d)", len(neg))}}
	return savePNG(p, path, 5*vg.Inch, 5*vg.Inch)
}

// KDE returns a Gaussian kernel density estimate of x on n points spanning
// the data plus three bandwidths, with Silverman's rule-of-thumb bandwidth.
// Constant data gets a small bandwidth so it still draws.
func KDE(x []float64, n int) (at, density []float64) {
	s := slices.Clone(x)
	slices.Sort(s)
	m := len(s)
	mean, sd := 0.0, 0.0
	for _, v := range s {
		mean += v
	}
	mean /= float64(m)
	for _, v := range s {
		sd += (v - mean) * (v - mean)
	}
	if m > 1 {
		sd = math.Sqrt(sd / float64(m-1))
	}
	iqr := s[(3*m)/4] - s[m/4]
	spread := sd
	if iqr > 0 && iqr/1.34 < spread {
		spread = iqr / 1.34
	}
	h := 0.9 * spread * math.Pow(float64(m), -0.2)
	if h <= 0 {
		h = 1e-3 * math.Max(1, math.Abs(mean))
	}
	lo, hi := s[0]-3*h, s[m-1]+3*h
	at = make([]float64, n)
	density = make([]float64, n)
	norm := 1 / (float64(m) * h * math.Sqrt(2*math.Pi))
	for i := range at {
		y := lo + (hi-lo)*float64(i)/float64(n-1)
		at[i] = y
		// Only points within 6 bandwidths contribute measurably.
		a, _ := slices.BinarySearch(s, y-6*h)
		var sum float64
		for _, v := range s[a:] {
			if v > y+6*h {
				break
			}
			z := (y - v) / h
			sum += math.Exp(-z * z / 2)
		}
		density[i] = sum * norm
	}
	return at, density
}

// blues is a palette from white to a mid blue, light enough at its end for
// black count labels to stay readable.
func blues(n int) palette.Palette {
	cs := make(bluePalette, n)
	for i := range cs {
		t := float64(i) / float64(n-1)
		cs[i] = color.NRGBA{R: uint8(255 - t*(255-0x4a)), G: uint8(255 - t*(255-0x98)), B: uint8(255 - t*(255-0xd0)), A: 0xff}
	}
	return cs
}

type bluePalette []color.Color

func (p bluePalette) Colors() []color.Color { return p }

// confusionGrid is the 2×2 confusion matrix as a heat-map grid: columns are
// the predicted class, rows the actual class, toxic first.
type confusionGrid [2][2]float64

func (g confusionGrid) Dims() (c, r int)   { return 2, 2 }
func (g confusionGrid) Z(c, r int) float64 { return g[r][c] }
func (g confusionGrid) X(c int) float64    { return float64(c) }
func (g confusionGrid) Y(r int) float64    { return float64(r) }

// PlotConfusion writes the confusion matrix as a heat map with counts,
// toxic as the positive class.
func PlotConfusion(path string, c rewardhead.Confusion) error {
	// Row 1 (top) is actual toxic, row 0 actual non-toxic; column 0
	// predicted toxic, column 1 predicted non-toxic.
	g := confusionGrid{{float64(c.FP), float64(c.TN)}, {float64(c.TP), float64(c.FN)}}
	p := plot.New()
	p.Title.Text = "Confusion matrix (toxic = positive)"
	hm := plotter.NewHeatMap(g, blues(32))
	hm.Min, hm.Max = 0, math.Max(1, math.Max(math.Max(g[0][0], g[0][1]), math.Max(g[1][0], g[1][1])))
	p.Add(hm)
	total := float64(c.TP + c.FP + c.TN + c.FN)
	labels := plotter.XYLabels{
		XYs: plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: 1}, {X: 0, Y: 0}, {X: 1, Y: 0}},
		Labels: []string{
			fmt.Sprintf("TP %d\n%.1f%%", c.TP, 100*float64(c.TP)/total),
			fmt.Sprintf("FN %d\n%.1f%%", c.FN, 100*float64(c.FN)/total),
			fmt.Sprintf("FP %d\n%.1f%%", c.FP, 100*float64(c.FP)/total),
			fmt.Sprintf("TN %d\n%.1f%%", c.TN, 100*float64(c.TN)/total),
		},
	}
	l, err := plotter.NewLabels(labels)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign = draw.XCenter
		l.TextStyle[i].YAlign = draw.YCenter
		l.TextStyle[i].Font.Size = vg.Points(14)
		l.TextStyle[i].Color = color.Black
	}
	p.Add(l)
	p.X.Label.Text = "predicted"
	p.Y.Label.Text = "actual"
	p.X.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "toxic"}, {Value: 1, Label: "non-toxic"}}
	p.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "non-toxic"}, {Value: 1, Label: "toxic"}}
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = -0.5, 1.5, -0.5, 1.5
	return savePNG(p, path, 5*vg.Inch, 4.5*vg.Inch)
}

// Series is one line of a curve plot, with optional symmetric error bars.
type Series struct {
	Name string
	X, Y []float64
	// Err, when not nil, is the half-height of each point's error bar.
	Err []float64
	// Color, when not nil, overrides the series' place in the default cycle.
	Color color.Color
}

// PlotCurves writes line plots with points and error bars. Points with a
// NaN Y (an undefined metric) are left out.
func PlotCurves(path, title, xLabel, yLabel string, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	for k, s := range series {
		var xy plotter.XYs
		var errs plotter.YErrors
		for i := range s.X {
			if math.IsNaN(s.Y[i]) {
				continue
			}
			xy = append(xy, plotter.XY{X: s.X[i], Y: s.Y[i]})
			e := 0.0
			if s.Err != nil && !math.IsNaN(s.Err[i]) {
				e = s.Err[i]
			}
			errs = append(errs, struct{ Low, High float64 }{e, e})
		}
		if len(xy) == 0 {
			continue
		}
		line, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		col := s.Color
		if col == nil {
			col = plotutil.Color(k)
		}
		line.Color = col
		pts.Color = col
		pts.Shape = plotutil.Shape(k)
		p.Add(line, pts)
		p.Legend.Add(s.Name, line, pts)
		if s.Err != nil {
			eb, err := plotter.NewYErrorBars(struct {
				plotter.XYs
				plotter.YErrors
			}{xy, errs})
			if err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
			eb.Color = col
			p.Add(eb)
		}
	}
	p.Legend.Top, p.Legend.Left = quietCorner(series)
	return savePNG(p, path, 7*vg.Inch, 4.5*vg.Inch)
}

// quietCorner picks the corner for the legend that covers the fewest data
// points, error bars included, preferring top right, then top left, bottom
// right and bottom left.
func quietCorner(series []Series) (top, left bool) {
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	type pt struct{ x, y float64 }
	var pts []pt
	for _, s := range series {
		for i := range s.X {
			if math.IsNaN(s.Y[i]) {
				continue
			}
			e := 0.0
			if s.Err != nil && !math.IsNaN(s.Err[i]) {
				e = s.Err[i]
			}
			pts = append(pts, pt{s.X[i], s.Y[i] - e}, pt{s.X[i], s.Y[i]}, pt{s.X[i], s.Y[i] + e})
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			ymin, ymax = math.Min(ymin, s.Y[i]-e), math.Max(ymax, s.Y[i]+e)
		}
	}
	if len(pts) == 0 || xmax == xmin || ymax == ymin {
		return true, false
	}
	// The legend spans about 40% of the width and 7% of the height per line.
	w, h := 0.4, math.Min(0.9, 0.07*float64(len(series)))
	best, bestN := 0, math.MaxInt
	corners := []struct{ top, left bool }{{true, false}, {true, true}, {false, false}, {false, true}}
	for k, c := range corners {
		n := 0
		for _, p := range pts {
			fx, fy := (p.x-xmin)/(xmax-xmin), (p.y-ymin)/(ymax-ymin)
			inX := fx >= 1-w
			if c.left {
				inX = fx <= w
			}
			inY := fy >= 1-h
			if !c.top {
				inY = fy <= h
			}
			if inX && inY {
				n++
			}
		}
		if n < bestN {
			best, bestN = k, n
		}
	}
	return corners[best].top, corners[best].left
}

// PlotBoxes writes one box plot per named group of values.
func PlotBoxes(path, title, yLabel string, names []string, values [][]float64) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	ticks := make(plot.ConstantTicks, len(names))
	for k := range names {
		b, err := plotter.NewBoxPlot(vg.Points(20), float64(k), plotter.Values(values[k]))
		if err != nil {
			return fmt.Errorf("%s: %s: %v", path, names[k], err)
		}
		b.FillColor = plotutil.Color(k)
		p.Add(b)
		ticks[k] = plot.Tick{Value: float64(k), Label: names[k]}
	}
	zero, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 0}, {X: float64(len(names)) - 0.5, Y: 0}})
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	zero.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(zero)
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	return savePNG(p, path, vg.Length(max(4, 1.2*float64(len(names))))*vg.Inch, 4.5*vg.Inch)
}

// EvalPlots writes the Figure 1 set for one head into dir: the reward
// distributions by class, the confusion matrix, and, with ground truth,
// the scatter against it. It returns the files written.
func EvalPlots(dir string, r *rewardhead.Report, pos, neg, gtPos, gtNeg []float64) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	p := filepath.Join(dir, "reward_distributions.png")
	if err := PlotDistributions(p, pos, neg, r.Threshold); err != nil {
		return nil, err
	}
	out = append(out, p)
	p = filepath.Join(dir, "confusion.png")
	if err := PlotConfusion(p, r.Confusion); err != nil {
		return nil, err
	}
	out = append(out, p)
	if gtPos != nil {
		p = filepath.Join(dir, "scatter_gt.png")
		if err := PlotScatter(p, pos, neg, gtPos, gtNeg, r.Threshold); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
