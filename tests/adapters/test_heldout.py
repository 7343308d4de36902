"""One held-out scorer: the trainer's eval loss and the gate's NLL are the same number."""

from lingualift.adapters.data import Example
from lingualift.adapters.heldout import heldout_nll
from lingualift.continual import gate

from .test_trainer import examples, trainer


def test_the_gate_scores_what_the_trainer_evaluates(tmp_path):
    held = [*examples(5), Example(id="pc", kind="prompt_completion", prompt="Q: ", completion="x")]
    run = trainer(tmp_path, max_steps=3)
    run.load_data(examples(12), held)  # no packing: the gate scores examples one per row
    run.fit(progress=False)
    expected = run.evaluate(batch_size=2)
    assert run.model.training  # evaluate() hands the model back in train mode
    model = run.accelerator.unwrap_model(run.model)
    score = heldout_nll(model, run.tokenizer, held, run.args.max_length, batch_size=2)
    assert score == expected  # not approximately: the same function sums the same tokens
    assert gate.heldout_nll is heldout_nll
    assert heldout_nll(model, run.tokenizer, held[:2], run.args.max_length) != score
