// Package plot draws simple line plots (for example latency CDFs) into PNG
// images using only the standard library image packages and the basicfont
// bitmap face. It owns axes, ticks, a legend and optional log scales; nothing
// else.
package plot
