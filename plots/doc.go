// Package plots draws the project's figures with one look: titles clear of
// the top edge, legends beside the data rather than on it, tick labels that
// are never cut at the edges, and colours that stay distinct side by side
// (Okabe & Ito's colour-blind-safe palette), with markers and dashes to tell
// apart series that share a colour.
//
// A figure is a *Figure (New); Lines adds curves to it; Save writes it as a
// PNG, and SavePanels writes several figures as the panels of one PNG.
package plots
