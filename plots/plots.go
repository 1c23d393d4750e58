package plots

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"irl/atomicfile"
)

// Palette is Okabe & Ito's eight colours minus black and yellow (too pale on
// white), in an order where neighbours differ in hue and lightness.
var Palette = []color.Color{
	color.RGBA{0x00, 0x72, 0xB2, 0xff}, // blue
	color.RGBA{0xD5, 0x5E, 0x00, 0xff}, // vermillion
	color.RGBA{0x00, 0x9E, 0x73, 0xff}, // bluish green
	color.RGBA{0xCC, 0x79, 0xA7, 0xff}, // reddish purple
	color.RGBA{0xE6, 0x9F, 0x00, 0xff}, // orange
	color.RGBA{0x56, 0xB4, 0xE9, 0xff}, // sky blue
}

// Color is the i-th palette colour, cycling.
func Color(i int) color.Color { return Palette[i%len(Palette)] }

// markers cycle with a period prime to the palette's, so that two series
// sharing a colour never share a marker too.
var markers = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}, draw.CrossGlyph{},
	draw.RingGlyph{}, draw.PlusGlyph{}, draw.SquareGlyph{},
}

// dashes of the i-th series: solid for the first round of the palette,
// then dashed, then dotted, so a repeated colour is still a different line.
func dashes(i int) []vg.Length {
	switch (i / len(Palette)) % 3 {
	case 1:
		return []vg.Length{vg.Points(6), vg.Points(3)}
	case 2:
		return []vg.Length{vg.Points(1.5), vg.Points(2.5)}
	}
	return nil
}

// Margins around every figure: the top keeps the title off the edge, the
// right keeps the last x tick label (centred on the axis end) whole.
var (
	marginTop    = vg.Points(8)
	marginRight  = vg.Points(18)
	marginBottom = vg.Points(4)
	marginLeft   = vg.Points(6)
	// legendGap separates the data area from the legend column.
	legendGap = vg.Points(12)
)

// Figure is a plot in the house style: a title with room above it, padding
// so that the outermost tick labels are not cut, and a legend in a column
// to the right of the data, so it never hides a point.
type Figure struct {
	*plot.Plot
}

// New starts a figure.
func New(title, x, y string) *Figure {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(10)
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.X.Padding, p.Y.Padding = vg.Points(4), vg.Points(4)
	p.X.Tick.Marker, p.Y.Tick.Marker = Ticks{}, Ticks{}
	return &Figure{Plot: p}
}

// Ticks are gonum's default ticks with labels in as few decimals as show
// every labelled value exactly, the same for all: "750", not "750.00"; 0.25,
// 0.5, 0.75 as "0.25", "0.50", "0.75".
type Ticks struct{}

// Ticks implements plot.Ticker.
func (Ticks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	scale := 0.0
	for _, t := range ts {
		if t.Label != "" {
			if strings.ContainsAny(t.Label, "eE") {
				return ts // gonum chose exponents for tiny or huge values
			}
			scale = max(scale, math.Abs(t.Value))
		}
	}
	for d := 0; d <= 6; d++ {
		exact := true
		for _, t := range ts {
			if t.Label == "" {
				continue
			}
			v, _ := strconv.ParseFloat(strconv.FormatFloat(t.Value, 'f', d, 64), 64)
			exact = exact && math.Abs(v-t.Value) <= 1e-9*max(scale, 1e-300)
		}
		if exact {
			for i, t := range ts {
				if t.Label != "" {
					ts[i].Label = strconv.FormatFloat(t.Value, 'f', d, 64)
				}
			}
			break
		}
	}
	return ts
}

// AddLegend adds a legend entry; entries are drawn in the legend column in
// the order added.
func (f *Figure) AddLegend(name string, thumbs ...plot.Thumbnailer) {
	f.Legend.Add(name, thumbs...)
}

// legendColumn is the width the legend takes to the right of the data,
// gap included; 0 without a legend.
func (f *Figure) legendColumn() vg.Length {
	w := f.Legend.Rectangle(draw.Canvas{}).Size().X
	if w <= 0 {
		return 0
	}
	return w + legendGap
}

// Draw draws the figure into c: margins, the title, the plot, and the
// legend in a column right of the data, top-aligned with it. (The embedded
// Plot's own Draw would put the legend on the data.)
func (f *Figure) Draw(c draw.Canvas) {
	c = draw.Crop(c, marginLeft, -marginRight, marginBottom, -marginTop)
	title, lg, lw := f.Title.Text, f.Legend, f.legendColumn()
	body := c
	if title != "" {
		body = draw.Crop(c, 0, 0, 0, -(f.Title.TextStyle.Rectangle(title).Size().Y + f.Title.Padding))
	}
	// Plot.Draw centres the title on what it is given, which excludes the
	// legend column, and draws the legend inside the data area; both are
	// taken out while it runs and drawn here instead.
	f.Title.Text, f.Legend = "", plot.NewLegend()
	defer func() { f.Title.Text, f.Legend = title, lg }()
	area := draw.Crop(body, 0, -lw, 0, 0)
	f.Plot.Draw(area)
	data := f.Plot.DataCanvas(area)
	if title != "" {
		// Centred over the data where it fits, else kept inside the figure.
		half := f.Title.TextStyle.Width(title) / 2
		x := (data.Min.X + data.Max.X) / 2
		x = max(min(x, c.Max.X-half), c.Min.X+half)
		c.FillText(f.Title.TextStyle, vg.Point{X: x, Y: c.Max.Y + f.Title.TextStyle.FontExtents().Descent}, title)
	}
	if lw == 0 {
		return
	}
	col := draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
		Min: vg.Point{X: area.Max.X + legendGap, Y: data.Min.Y},
		Max: vg.Point{X: c.Max.X, Y: data.Max.Y},
	}}
	lg.Top, lg.Left, lg.XOffs, lg.YOffs = true, true, 0, 0
	lg.Draw(col)
}

// Save renders the figure as a PNG of w×h inches at path, through a
// temporary file.
func (f *Figure) Save(path string, w, h float64) error {
	return SavePanels(path, w, h, 1, f)
}

// SavePanels renders figs as the panels of one PNG of w×h inches at path,
// cols panels to a row, in reading order; a nil figure leaves its cell
// empty. Each column is widened by the widest legend in it, so that panels
// with and without a legend get plotting areas of about the same width.
func SavePanels(path string, w, h float64, cols int, figs ...*Figure) error {
	if cols < 1 || len(figs) == 0 {
		return fmt.Errorf("%s: cannot lay out %d figures in %d columns", path, len(figs), cols)
	}
	cols = min(cols, len(figs))
	rows := (len(figs) + cols - 1) / cols
	W, H := vg.Length(w)*vg.Inch, vg.Length(h)*vg.Inch
	extra := make([]vg.Length, cols)
	var total vg.Length
	for k, f := range figs {
		if f != nil {
			extra[k%cols] = max(extra[k%cols], f.legendColumn())
		}
	}
	for _, e := range extra {
		total += e
	}
	base := (W - total) / vg.Length(cols)
	if base < vg.Inch {
		return fmt.Errorf("%s: %.1f in is too narrow for %d columns of panels with their legends", path, w, cols)
	}
	img := vgimg.New(W, H)
	dc := draw.New(img)
	for k, f := range figs {
		if f == nil {
			continue
		}
		r, j := k/cols, k%cols
		var x0 vg.Length
		for i := range j {
			x0 += base + extra[i]
		}
		cell := draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: x0, Y: H - vg.Length(r+1)*H/vg.Length(rows)},
			Max: vg.Point{X: x0 + base + extra[j], Y: H - vg.Length(r)*H/vg.Length(rows)},
		}}
		f.Draw(cell)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
		return err
	})
}

// Series is one line of a line chart.
type Series struct {
	Name string
	X, Y []float64
	// Err, when not nil, holds each point's error-bar half-height; NaN
	// draws no bar.
	Err []float64
	// Color, when not nil, replaces the series' palette colour, for
	// series whose colour means something across figures.
	Color color.Color
}

// Lines draws series as lines with markers (on at most 40 evenly spaced
// points of a long series), and error bars where given.
// The i-th series takes the i-th palette colour and marker, and series past
// the palette's length are dashed, then dotted. Non-finite points are left
// out; a named series gets a legend entry.
func Lines(p *Figure, series ...Series) error {
	// A constant curve (a fixed β) would get gonum's ±1 range around it and
	// sit flat on the middle tick whatever its value: give it a range of its
	// own size, so the ticks read the value.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, y := range s.Y {
			if finite(y) {
				lo, hi = min(lo, y), max(hi, y)
			}
		}
	}
	if lo == hi && lo != 0 && finite(lo+math.Abs(lo)/2) && finite(lo-math.Abs(lo)/2) {
		p.Y.Min, p.Y.Max = lo-math.Abs(lo)/2, hi+math.Abs(hi)/2
	}
	for i, s := range series {
		var xy plotter.XYs
		var errs plotter.YErrors
		for k := range s.X {
			if !finite(s.X[k]) || !finite(s.Y[k]) {
				continue
			}
			xy = append(xy, plotter.XY{X: s.X[k], Y: s.Y[k]})
			e := 0.0
			if s.Err != nil && finite(s.Err[k]) {
				e = math.Abs(s.Err[k])
			}
			errs = append(errs, struct{ Low, High float64 }{e, e})
		}
		if len(xy) == 0 {
			continue
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return fmt.Errorf("series %s: %w", s.Name, err)
		}
		// A marker on every point of a long run (a training curve) merges
		// into a thick band; about maxMarkers evenly spaced ones still say
		// which line is which.
		marked := xy
		if step := (len(xy) + maxMarkers - 1) / maxMarkers; step > 1 {
			marked = nil
			for k := 0; k < len(xy); k += step {
				marked = append(marked, xy[k])
			}
		}
		pts, err := plotter.NewScatter(marked)
		if err != nil {
			return fmt.Errorf("series %s: %w", s.Name, err)
		}
		col := s.Color
		if col == nil {
			col = Color(i)
		}
		l.Color, pts.Color = col, col
		l.Width = vg.Points(1.5)
		l.Dashes = dashes(i)
		pts.Radius = vg.Points(2.5)
		pts.Shape = markers[i%len(markers)]
		p.Add(l, pts)
		if s.Err != nil {
			eb, err := plotter.NewYErrorBars(struct {
				plotter.XYs
				plotter.YErrors
			}{xy, errs})
			if err != nil {
				return fmt.Errorf("series %s: %w", s.Name, err)
			}
			eb.Color = col
			eb.CapWidth = vg.Points(5)
			p.Add(eb)
		}
		if s.Name != "" {
			p.AddLegend(s.Name, l, pts)
		}
	}
	return nil
}

// Dodge shifts each series' x values so that points of different series at
// one x stand side by side instead of on top of each other (a metric at 1.0
// hidden under another at 1.0): series k of n moves by (k − (n−1)/2)·frac of
// the x range. It changes series in place; one series, or a range of zero,
// stays where it is.
func Dodge(series []Series, frac float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, x := range s.X {
			if finite(x) {
				lo, hi = min(lo, x), max(hi, x)
			}
		}
	}
	if len(series) < 2 || !(hi > lo) {
		return
	}
	step := frac * (hi - lo)
	for k := range series {
		off := (float64(k) - float64(len(series)-1)/2) * step
		xs := make([]float64, len(series[k].X))
		for i, x := range series[k].X {
			xs[i] = x + off
		}
		series[k].X = xs
	}
}

// maxMarkers bounds the markers drawn on one series.
const maxMarkers = 40

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
