
ByJðU˜Q@_`W I€R