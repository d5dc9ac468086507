"""General distillation: the pretrained teacher encoder distilled into a student on plain text, with no task.

TinyBERT, MiniLM and MobileBERT do this first and distil the task second. Here the first step is
`tf_distill general_distill` (`tf_distill.general.run`): a corpus (`tf_distill.general.corpus`) packed into windows,
a pretrained teacher (`tf_distill.general.teacher`), the `Distiller` with intermediate matches only, and an
HF-format directory at the end (`tf_distill.pretrained.save_pretrained`) that task distillation loads with
`--student_init_checkpoint`.
"""
