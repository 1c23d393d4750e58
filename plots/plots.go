// Package plots draws the project's figures with one look: titles clear of
// the top edge, legends beside the data rather than on it, tick labels that
// are never cut at the edges, and colours that stay distinct side by side
// (Okabe & Ito's colour-blind-safe palette).
package plots

import (
	"fmt"
	"image/color"
	"io"
	"math"

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

// Figure is a plot in the house style: a title with room above it, padding
// so that the outermost tick labels are not cut, and a legend in a column
// to the right of the data, so it never hides a point.
type Figure struct {
	*plot.Plot
	legend []string
}

// New starts a figure.
func New(title, x, y string) *Figure {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(10)
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.X.Padding, p.Y.Padding = vg.Points(4), vg.Points(4)
	p.Legend.Top = true
	p.Legend.Left = true
	return &Figure{Plot: p}
}

// AddLegend adds a legend entry.
func (f *Figure) AddLegend(name string, thumbs ...plot.Thumbnailer) {
	f.Legend.Add(name, thumbs...)
	f.legend = append(f.legend, name)
}

// Save renders the figure as a PNG of w×h inches at path, through a
// temporary file.
func (f *Figure) Save(path string, w, h float64) error {
	img := vgimg.New(vg.Length(w)*vg.Inch, vg.Length(h)*vg.Inch)
	dc := draw.New(img)
	// Margins: top above the title, right for the last x tick label.
	dc = draw.Crop(dc, vg.Points(6), -vg.Points(16), vg.Points(4), -vg.Points(6))
	if len(f.legend) > 0 {
		var lw vg.Length
		for _, name := range f.legend {
			lw = max(lw, f.Legend.TextStyle.Width(name))
		}
		lw += f.Legend.ThumbnailWidth + vg.Points(24)
		area := draw.Crop(dc, 0, -lw, 0, 0)
		data := f.DataCanvas(area)
		// The legend is drawn from the data area's left edge plus XOffs:
		// past its right edge, into the column kept free.
		f.Legend.XOffs = data.Max.X - data.Min.X + vg.Points(14)
		f.Draw(area)
	} else {
		f.Draw(dc)
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
}

// Lines draws series as lines with small markers, in palette order;
// non-finite points are left out.
func Lines(p *Figure, series ...Series) error {
	for i, s := range series {
		var xy plotter.XYs
		for k := range s.X {
			if !math.IsNaN(s.Y[k]) && !math.IsInf(s.Y[k], 0) {
				xy = append(xy, plotter.XY{X: s.X[k], Y: s.Y[k]})
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("series %s: %v", s.Name, err)
		}
		l.Color, pts.Color = Color(i), Color(i)
		l.Width = vg.Points(1.5)
		pts.Radius = vg.Points(1.5)
		pts.Shape = draw.CircleGlyph{}
		p.Add(l, pts)
		if s.Name != "" {
			p.AddLegend(s.Name, l, pts)
		}
	}
	return nil
}
