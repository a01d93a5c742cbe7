// Package model owns the user-facing model interfaces of LiteFlow-style
// adaptation (Model: freeze, evaluate, adapt) and a float32 multilayer
// perceptron implementation (MLP) with ReLU, tanh, sigmoid and identity
// layers, trained online with Adam on mean squared error.
//
// A frozen MLP is the float model that package quant turns into an integer
// snapshot.
package model
