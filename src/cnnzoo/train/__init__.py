"""Training: the config and its recipes, the loop (:mod:`~cnnzoo.train.loop`) and its state, optimizer and
schedule, the history's queries, checkpoints, data parallelism and the metrics of an evaluation."""
