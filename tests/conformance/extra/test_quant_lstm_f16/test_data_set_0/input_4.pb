
B	initial_hJบทน6@@ฟลบ