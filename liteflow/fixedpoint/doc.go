// Package fixedpoint owns the integer arithmetic used by lake's quantized
// snapshot engines: TFLite's reference requantization
// (SaturatingRoundingDoublingHighMul, RoundingDivideByPOT,
// MultiplyByQuantizedMultiplier) and the conversion of a real multiplier into
// a Q31 multiplier and shift (QuantizeMultiplier). The C kernel engine must
// reproduce these functions bit for bit; see liteflow/SNAPSHOT.md.
package fixedpoint
