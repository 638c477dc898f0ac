2
a--b--c--d2no delimiter2--lead2a--bBx