package audit

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"strings"
)

// report.html is one file that opens anywhere, offline and years later: no
// script, no font, no stylesheet or image fetched from elsewhere; the charts
// are inline SVG drawn here (package plots draws PNG files through gonum,
// which an HTML page could only inline as base64 images that a reader can
// neither search nor zoom). html/template escapes every text from the
// models and the files.

//go:embed report.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"f3":    func(x float64) string { return fmt.Sprintf("%.3f", x) },
	"inc":   func(i int) int { return i + 1 },
	"deref": func(x *float64) float64 { return *x },
}).Parse(htmlSource))

// The token highlights: a token's background runs from white to these at
// the largest |value| of the report. The bars of the word charts use other
// shades (wordGreen, wordRed), so a test can tell the highlights in a
// screenshot from the bars.
var (
	tokenGreen = rgb{77, 175, 74}
	tokenRed   = rgb{228, 26, 28}
	wordGreen  = rgb{27, 120, 55}
	wordRed    = rgb{153, 30, 40}
	barBlue    = rgb{0, 114, 178} // Okabe & Ito's blue, plots' first colour
	barGrey    = rgb{170, 170, 170}
)

// minTint is the lightest highlight: a token near 0 still shows its sign.
// The legend's samples are legendTint: only a token at the report's
// largest |value| has the full colour.
const (
	minTint    = 0.15
	legendTint = 0.6
)

type rgb struct{ R, G, B uint8 }

// Hex is the colour as CSS and SVG take it (html/template passes "#rrggbb"
// through a style attribute; it would blank out "rgb(…)").
func (c rgb) Hex() string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// tint is c mixed with white: t = 0 is white, 1 is c.
func (c rgb) tint(t float64) rgb {
	mix := func(x uint8) uint8 { return uint8(math.Round(255 + (float64(x)-255)*t)) }
	return rgb{mix(c.R), mix(c.G), mix(c.B)}
}

// tokenColour is the background of a token of value v when the report's
// largest |value| is scale.
func tokenColour(v, scale float64) rgb {
	t := 0.0
	if scale > 0 {
		t = math.Abs(v) / scale
	}
	t = minTint + (1-minTint)*math.Min(1, t)
	if v >= 0 {
		return tokenGreen.tint(t)
	}
	return tokenRed.tint(t)
}

type tokenSpan struct {
	Text, Title, Bg string
	Pooled          bool
}

type tokenText struct {
	Source string
	Score  float64
	Sums   bool
	Spans  []tokenSpan
}

// tokenTexts renders the attributions, one colour scale for all of them
// so that texts compare.
func tokenTexts(ats []Attribution) (out []tokenText, scale float64) {
	for _, at := range ats {
		for _, t := range at.Tokens {
			scale = math.Max(scale, math.Abs(t.Value))
		}
	}
	for _, at := range ats {
		tt := tokenText{Source: at.Source, Score: at.Score, Sums: at.Sums}
		for i, t := range at.Tokens {
			title := fmt.Sprintf("%q: %+.4f", t.Token, t.Value)
			if i == at.Pooled {
				title += " (the pooled token: the text's score)"
			}
			tt.Spans = append(tt.Spans, tokenSpan{Text: t.Token, Title: title, Bg: tokenColour(t.Value, scale).Hex(), Pooled: i == at.Pooled})
		}
		out = append(out, tt)
	}
	return out, scale
}

// svgBar is one bar of a horizontal bar chart, in the SVG's coordinates.
type svgBar struct {
	Label, Value, Title string
	Y, X, W             float64
	Fill                string
	Bold                bool
}

// svgChart is a horizontal bar chart: labels left, bars from the zero
// line, values right.
type svgChart struct {
	Width, Height      float64
	LabelX, ValueX     float64
	Zero, Top, Bottom  float64
	BarH               float64
	Bars               []svgBar
	Title, Description string
}

const (
	chartWidth  = 500.0
	chartLabels = 150.0 // room for the labels
	chartValues = 60.0  // room for the values
	rowHeight   = 18.0
)

// barChart lays out values (any sign) as bars; fills, bold and titles are
// per bar.
func barChart(title, desc string, labels []string, values []float64, fills []rgb, bold []bool, format string) svgChart {
	c := svgChart{Width: chartWidth, LabelX: chartLabels - 6, ValueX: chartWidth - chartValues + 6, Top: 4, BarH: rowHeight - 4, Title: title, Description: desc}
	c.Height = c.Top + rowHeight*float64(len(values)) + 4
	c.Bottom = c.Height - 4
	lo, hi := 0.0, 0.0
	for _, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	span := chartWidth - chartLabels - chartValues
	x := func(v float64) float64 { return chartLabels + span*(v-lo)/(hi-lo) }
	c.Zero = x(0)
	for i, v := range values {
		b := svgBar{Label: labels[i], Value: fmt.Sprintf(format, v), Y: c.Top + rowHeight*float64(i), Fill: fills[i].Hex()}
		b.Title = b.Label + ": " + b.Value
		if bold != nil {
			b.Bold = bold[i]
		}
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			b.X, b.W = math.Min(x(v), c.Zero), math.Abs(x(v)-c.Zero)
		} else {
			b.X = c.Zero
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

// svgInterval is one estimate with its interval on a 0–1 axis.
type svgInterval struct {
	Label, Value string
	Y, X, Lo, Hi float64
	Dots         []float64 // each shuffle's estimate
	HasInterval  bool
}

type intervalChart struct {
	Width, Height, Left, Right, Half, Axis float64
	Rows                                   []svgInterval
	Ticks                                  []struct {
		X     float64
		Label string
	}
}

// intervals draws the held-out estimates and the shuffle control on one
// 0–1 axis with chance (0.5) marked: the picture a reader checks first.
func intervals(r *Report) intervalChart {
	c := intervalChart{Width: chartWidth, Left: 230, Right: chartWidth - 70}
	x := func(v float64) float64 { return c.Left + (c.Right-c.Left)*math.Max(0, math.Min(1, v)) }
	c.Half = x(0.5)
	h := r.HeldOut
	add := func(label string, v, lo, hi float64, each []float64) {
		row := svgInterval{Label: label, Value: fmt.Sprintf("%.3f", v), Y: 14 + 26*float64(len(c.Rows)), X: x(v), Lo: x(lo), Hi: x(hi), HasInterval: each == nil}
		for _, e := range each {
			row.Dots = append(row.Dots, x(e))
		}
		c.Rows = append(c.Rows, row)
	}
	add(fmt.Sprintf("held-out pair accuracy (%d prompts)", h.PairedPrompts), h.PairAccuracy, h.PairAccuracyLow, h.PairAccuracyHigh, nil)
	add("held-out separation (AUC)", h.Separation, h.SeparationLow, h.SeparationHigh, nil)
	add(fmt.Sprintf("shuffle control (%d shuffles)", len(r.Shuffle.Each)), r.Shuffle.PairAccuracy, 0, 0, append([]float64{}, r.Shuffle.Each...))
	c.Axis = 14 + 26*float64(len(c.Rows)) - 6
	c.Height = c.Axis + 22
	for _, t := range []float64{0, 0.25, 0.5, 0.75, 1} {
		c.Ticks = append(c.Ticks, struct {
			X     float64
			Label string
		}{x(t), fmt.Sprintf("%g", t)})
	}
	return c
}

type htmlView struct {
	R          *Report
	How        string
	Intervals  intervalChart
	Variants   svgChart
	Rewarded   svgChart
	Penalised  svgChart
	Tokens     []tokenText
	TokenScale float64
	TokenGreen string
	TokenRed   string
	Stages     []string
}

// HTML is report.html.
func (r *Report) HTML() ([]byte, error) {
	v := htmlView{R: r, Intervals: intervals(r), TokenGreen: tokenGreen.tint(legendTint).Hex(), TokenRed: tokenRed.tint(legendTint).Hex()}
	v.How = "given outputs"
	if r.Model != "" {
		v.How = "greedy"
		if r.Demonstrations.Sampled {
			v.How = "sampled"
		}
	}
	var labels []string
	var vals []float64
	var fills []rgb
	var bold []bool
	for _, x := range r.Features.Variants {
		labels = append(labels, fmt.Sprintf("%s, layer %d", x.Pool, x.Layer))
		vals = append(vals, x.TrainPairAccuracy)
		fill := barGrey
		if x.Chosen {
			fill = barBlue
		}
		fills, bold = append(fills, fill), append(bold, x.Chosen)
	}
	v.Variants = barChart("Training pair accuracy of each feature choice",
		"Each feature choice's head on its own training pairs; the chosen one in blue.", labels, vals, fills, bold, "%.3f")
	words := func(ws []WordScore, fill rgb, title string) svgChart {
		var labels []string
		var vals []float64
		var fills []rgb
		for _, w := range ws {
			label := w.Word
			if !w.InRange {
				label += " *"
			}
			labels, vals, fills = append(labels, label), append(vals, w.Score), append(fills, fill)
		}
		return barChart(title, "The head's mean score of each in the templates.", labels, vals, fills, nil, "%+.3f")
	}
	v.Rewarded = words(r.Words.Rewarded, wordGreen, "Most rewarded words")
	v.Penalised = words(r.Words.Penalised, wordRed, "Most penalised words")
	v.Tokens, v.TokenScale = tokenTexts(r.Examples.Tokens)
	for _, st := range stageNames {
		if t, ok := r.Seconds[st]; ok {
			v.Stages = append(v.Stages, fmt.Sprintf("%s %.1f s", st, t))
		}
	}
	var b bytes.Buffer
	if err := htmlTemplate.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("report.html: %w", err)
	}
	return b.Bytes(), nil
}

// OutOfRange says whether a word list holds a word outside the
// demonstrations' range (marked * in the charts).
func (w Words) OutOfRange() bool {
	for _, x := range append(append([]WordScore(nil), w.Rewarded...), w.Penalised...) {
		if !x.InRange {
			return true
		}
	}
	return false
}

// TemplateList is the templates quoted, for a sentence.
func (w Words) TemplateList() string { return "“" + strings.Join(w.Templates, "”, “") + "”" }
