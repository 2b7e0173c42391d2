"""The leaderboard: several models over several seeds (:mod:`~cnnzoo.leaderboard.plan`), their rows merged into one
table, figure and JSON (:mod:`~cnnzoo.leaderboard.board`)."""
