
B	initial_cJ'=n¹@’ºJ<¥­