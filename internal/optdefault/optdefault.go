// Package optdefault fills unset fields of an options struct with their
// documented defaults, so that a defaults method names each field once.
package optdefault

// Zero sets *v to def when *v is its type's zero value (an empty string, a
// nil pointer, a zero struct).
func Zero[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// NonPositive sets *v to def when *v is zero or negative: an unset count,
// rate or duration.
func NonPositive[T ~int | ~int64 | ~float64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
