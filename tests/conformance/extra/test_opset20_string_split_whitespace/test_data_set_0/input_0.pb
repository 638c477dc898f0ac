2  hello   world 2a	b
c2   2singleBx