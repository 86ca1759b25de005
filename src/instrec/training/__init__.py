"""Training: ``config`` (TrainConfig, the options of ``instrec train``), ``loop`` (``train``:
one run, top to bottom), ``lifecycle`` (the steps every run goes through), ``batches``
(gathering and augmenting), ``step`` (eager or compiled loss of a batch), ``lockstep``
(several runs with stacked weights), ``optim`` (fused Adam) and ``losses`` (masked focal
loss and BCE). Import from the modules: this package stays free of torch so that the
command line starts fast.
"""
