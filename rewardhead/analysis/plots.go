package analysis

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"irl/plots"
	"irl/rewardhead"
)

// Colours for the two classes, kept fixed across plots so a reader learns
// them once: the first two of the colour-blind-safe palette.
var (
	nonToxicColor = plots.Palette[0]
	toxicColor    = plots.Palette[1]
)

// Class names in legends, in the paper's terms rather than the flags'. They
// say the class only: the rows evaluated are often not the demonstrations
// (the toy demo's 500 labelled samples), so "expert" and "baseline" would
// be false there.
const (
	nonToxicName = "non-toxic"
	toxicName    = "toxic"
)

// Reference lines: black dashes for the decision threshold, grey dots for
// the ground truth's own boundary and for zero.
var (
	thresholdDashes = []vg.Length{vg.Points(5), vg.Points(3)}
	referenceDashes = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
	referenceColor  = color.Gray{Y: 0x60}
)

// metricLabels name the metrics in legends; others show their JSON key.
var metricLabels = map[string]string{
	"separation":        "separation (AUC)",
	"kendall_tau":       "Kendall τ vs ground truth",
	"kendall_tau_clean": "Kendall τ vs clean rewards",
	"cohens_d":          "Cohen's d",
}

func metricLabel(name string) string {
	if l, ok := metricLabels[name]; ok {
		return l
	}
	return name
}

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

// refLine is a straight reference line from a to b.
func refLine(a, b plotter.XY, dashes []vg.Length, c color.Color) (*plotter.Line, error) {
	l, err := plotter.NewLine(plotter.XYs{a, b})
	if err != nil {
		return nil, err
	}
	l.Dashes, l.Color = dashes, c
	return l, nil
}

// scatterFigure is IRL reward against ground-truth reward, one colour and
// marker per class, with the quadrant lines of the agreement table: ground
// truth 0 and the IRL threshold.
func scatterFigure(title string, irlPos, irlNeg, gtPos, gtNeg []float64, threshold float64) (*plots.Figure, error) {
	f := plots.New(title, "ground-truth reward", "IRL reward")
	f.Add(plotter.NewGrid())
	for _, c := range []struct {
		name    string
		irl, gt []float64
		colour  color.Color
		shape   draw.GlyphDrawer
	}{{nonToxicName, irlPos, gtPos, nonToxicColor, draw.CircleGlyph{}}, {toxicName, irlNeg, gtNeg, toxicColor, draw.PyramidGlyph{}}} {
		xy := make(plotter.XYs, len(c.irl))
		for i := range xy {
			xy[i] = plotter.XY{X: c.gt[i], Y: c.irl[i]}
		}
		s, err := plotter.NewScatter(xy)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Color = c.colour
		s.GlyphStyle.Radius = vg.Points(1.8)
		s.GlyphStyle.Shape = c.shape
		f.Add(s)
		f.AddLegend(c.name, s)
	}
	gt, irl := concat(gtPos, gtNeg), concat(irlPos, irlNeg)
	thr, err := refLine(plotter.XY{X: slices.Min(gt), Y: threshold}, plotter.XY{X: slices.Max(gt), Y: threshold}, thresholdDashes, color.Black)
	if err != nil {
		return nil, err
	}
	zero, err := refLine(plotter.XY{X: 0, Y: slices.Min(irl)}, plotter.XY{X: 0, Y: slices.Max(irl)}, referenceDashes, referenceColor)
	if err != nil {
		return nil, err
	}
	f.Add(thr, zero)
	f.AddLegend(fmt.Sprintf("IRL threshold %.3g", threshold), thr)
	f.AddLegend("ground truth 0", zero)
	return f, saneAxes(f.Plot)
}

// PlotScatter writes a scatter of IRL reward against ground-truth reward,
// one colour per class, as in the paper's Figure 1. Dashed lines at ground
// truth 0 and at the IRL threshold split it into the quadrants of the
// agreement table.
func PlotScatter(path string, irlPos, irlNeg, gtPos, gtNeg []float64, threshold float64) error {
	f, err := scatterFigure("IRL reward vs ground-truth reward", irlPos, irlNeg, gtPos, gtNeg, threshold)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return plots.SavePanels(path, 7.5, 5, 1, f)
}

// distributionsFigure is violins (Gaussian kernel densities, mirrored) with
// box plots inside for the two classes' rewards, and the threshold.
func distributionsFigure(title string, pos, neg []float64, threshold float64) (*plots.Figure, error) {
	f := plots.New(title, "", "reward")
	f.Add(plotter.NewGrid())
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
			return nil, err
		}
		r, g, b, _ := c.colour.RGBA()
		poly.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 0x60}
		poly.LineStyle.Color = c.colour
		f.Add(poly)
		box, err := plotter.NewBoxPlot(vg.Points(12), x, plotter.Values(c.v))
		if err != nil {
			return nil, err
		}
		box.FillColor = color.White
		f.Add(box)
	}
	lo, hi := math.Min(slices.Min(pos), slices.Min(neg)), math.Max(slices.Max(pos), slices.Max(neg))
	// A threshold far outside the data (a fixed one on a badly scaled head)
	// would squash the violins into a line; it is left out of the plot.
	if threshold >= lo-(hi-lo) && threshold <= hi+(hi-lo) {
		l, err := refLine(plotter.XY{X: -0.5, Y: threshold}, plotter.XY{X: 1.5, Y: threshold}, thresholdDashes, color.Black)
		if err != nil {
			return nil, err
		}
		f.Add(l)
		f.AddLegend(fmt.Sprintf("threshold %.3g", threshold), l)
	}
	f.X.Min, f.X.Max = -0.6, 1.6
	f.X.Tick.Marker = plot.ConstantTicks{
		{Value: 0, Label: fmt.Sprintf("%s\nn = %d", nonToxicName, len(pos))},
		{Value: 1, Label: fmt.Sprintf("%s\nn = %d", toxicName, len(neg))},
	}
	return f, saneAxes(f.Plot)
}

// PlotDistributions writes violins (Gaussian kernel densities, mirrored)
// with box plots inside for the two classes' rewards, and a dashed line at
// the threshold.
func PlotDistributions(path string, pos, neg []float64, threshold float64) error {
	f, err := distributionsFigure("Reward by class", pos, neg, threshold)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return plots.SavePanels(path, 6.5, 5, 1, f)
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

// confusionFigure is the confusion matrix as a heat map with counts, toxic
// as the positive class.
func confusionFigure(title string, c rewardhead.Confusion) (*plots.Figure, error) {
	// Row 1 (top) is actual toxic, row 0 actual non-toxic; column 0
	// predicted toxic, column 1 predicted non-toxic.
	g := confusionGrid{{float64(c.FP), float64(c.TN)}, {float64(c.TP), float64(c.FN)}}
	f := plots.New(title, "predicted", "actual")
	hm := plotter.NewHeatMap(g, blues(32))
	hm.Min, hm.Max = 0, math.Max(1, math.Max(math.Max(g[0][0], g[0][1]), math.Max(g[1][0], g[1][1])))
	f.Add(hm)
	total := math.Max(1, float64(c.TP+c.FP+c.TN+c.FN))
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
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign = draw.XCenter
		l.TextStyle[i].YAlign = draw.YCenter
		l.TextStyle[i].Font.Size = vg.Points(14)
		l.TextStyle[i].Color = color.Black
	}
	f.Add(l)
	f.X.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "toxic"}, {Value: 1, Label: "non-toxic"}}
	f.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "non-toxic"}, {Value: 1, Label: "toxic"}}
	f.X.Min, f.X.Max, f.Y.Min, f.Y.Max = -0.5, 1.5, -0.5, 1.5
	return f, nil
}

// PlotConfusion writes the confusion matrix as a heat map with counts,
// toxic as the positive class.
func PlotConfusion(path string, c rewardhead.Confusion) error {
	f, err := confusionFigure("Confusion matrix (toxic = positive)", c)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return plots.SavePanels(path, 5, 4.5, 1, f)
}

// Series is one line of a curve plot, with optional symmetric error bars
// (Err, half-heights) and an optional fixed colour; see plots.Series.
type Series = plots.Series

// curvesFigure is line plots with markers and error bars; NaN points (an
// undefined metric) are left out.
func curvesFigure(title, xLabel, yLabel string, series []Series) (*plots.Figure, error) {
	f := plots.New(title, xLabel, yLabel)
	f.Add(plotter.NewGrid())
	if err := plots.Lines(f, series...); err != nil {
		return nil, err
	}
	return f, saneAxes(f.Plot)
}

// PlotCurves writes line plots with markers and error bars, the legend
// beside them. Points with a NaN Y (an undefined metric) are left out.
func PlotCurves(path, title, xLabel, yLabel string, series []Series) error {
	f, err := curvesFigure(title, xLabel, yLabel, series)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return plots.SavePanels(path, 8.5, 4.5, 1, f)
}

// PlotBoxes writes one box plot per named group of values.
func PlotBoxes(path, title, yLabel string, names []string, values [][]float64) error {
	f := plots.New(title, "", yLabel)
	f.Add(plotter.NewGrid())
	ticks := make(plot.ConstantTicks, len(names))
	for k := range names {
		b, err := plotter.NewBoxPlot(vg.Points(20), float64(k), plotter.Values(values[k]))
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, names[k], err)
		}
		b.FillColor = plots.Color(k)
		f.Add(b)
		ticks[k] = plot.Tick{Value: float64(k), Label: names[k]}
	}
	zero, err := refLine(plotter.XY{X: -0.5, Y: 0}, plotter.XY{X: float64(len(names)) - 0.5, Y: 0}, referenceDashes, referenceColor)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f.Add(zero)
	f.X.Tick.Marker = ticks
	f.X.Min, f.X.Max = -0.6, float64(len(names))-0.4
	if err := saneAxes(f.Plot); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return plots.SavePanels(path, max(4.5, 1.3*float64(len(names))), 4.5, 1, f)
}

// Figure1 writes the paper's Figure 1 for one head as one PNG of three
// panels side by side: (a) IRL reward against ground-truth reward, (b) the
// reward distributions by class with the threshold, (c) the confusion
// matrix. Without ground truth (gtPos nil) there is nothing to put on (a)'s
// x axis, so it is left out and the figure has the other two panels,
// lettered (a) and (b).
func Figure1(path string, r *rewardhead.Report, pos, neg, gtPos, gtNeg []float64) error {
	var figs []*plots.Figure
	letter := func() string { return fmt.Sprintf("(%c) ", 'a'+len(figs)) }
	if gtPos != nil {
		f, err := scatterFigure(letter()+"IRL vs ground-truth reward", pos, neg, gtPos, gtNeg, r.Threshold)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		figs = append(figs, f)
	}
	f, err := distributionsFigure(letter()+"Reward by class", pos, neg, r.Threshold)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	figs = append(figs, f)
	if f, err = confusionFigure(letter()+"Confusion matrix (toxic = positive)", r.Confusion); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	figs = append(figs, f)
	return plots.SavePanels(path, 5.5*float64(len(figs))+2.5, 5, len(figs), figs...)
}

// EvalPlots writes the Figure 1 set for one head into dir: figure1.png
// (Figure1's panels in one file), and each panel on its own: the reward
// distributions by class, the confusion matrix, and, with ground truth, the
// scatter against it. It returns the files written.
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
	p = filepath.Join(dir, "figure1.png")
	if err := Figure1(p, r, pos, neg, gtPos, gtNeg); err != nil {
		return nil, err
	}
	return append(out, p), nil
}
