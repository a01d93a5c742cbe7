// Command linnos generates I/O traces, trains LinnOS models on the simulated
// SSD, replays traces in the baseline, hedging, LinnOS and LinnOS+hedging
// modes (on the SSD model or, with -device, on real files and block devices
// with O_DIRECT), imports reference C weight headers and runs the demo.
//
//	linnos gen -preset azure -n 100000 -o azure.trace
//	linnos train -trace azure.trace -o azure.model -header azure.h
//	linnos replay -preset azure -seed 2 -model azure.model -plot cdf.png
//	linnos import-header -in w_Trace_dev_0.h -o dev0.model
//	linnos demo
package main
