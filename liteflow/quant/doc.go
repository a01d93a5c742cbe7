// Package quant owns post-training full-integer quantization of a float MLP
// (package model) into an integer snapshot (package snapshot): symmetric
// int8 weights per tensor or per channel, int8 or uint8 activations with
// scale and zero point calibrated on a representative set, int32 biases,
// TFLite-style fixed-point requantization multipliers, and lookup tables
// for tanh and sigmoid (1024 entries indexed by a 10-bit requantized
// pre-activation; TFLite's int8 tables index by the int8 value, which costs
// about two output steps of error on tanh). It also measures the snapshot's error against the
// float model, per layer and per layer kind (Compare).
package quant
