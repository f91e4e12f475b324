"""Model selection: candidates, prescreens, the protocol runner and leaderboards."""
