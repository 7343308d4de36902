import pytest

from lingualift.adapters.data import (
    IGNORE_INDEX,
    Example,
    collate,
    pack,
    read_examples,
    read_selection,
    split_heldout,
    tokenize_example,
    tokenize_examples,
)
from lingualift.data import Record, write_records
from lingualift.errors import LingualiftError
from lingualift.testing import byte_tokenizer

from .conftest import write_jsonl


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def test_formats_are_detected_and_loss_is_masked(tmp_path, tok):
    pc = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "Q: hi", "completion": " jambo"}])
    examples, summary = read_examples(str(pc))
    assert summary.format == "prompt_completion" and summary.rows == 1
    row = tokenize_example(examples[0], tok, 512)
    prompt_len = len(tok("Q: hi")["input_ids"])
    assert all(label == IGNORE_INDEX for label in row["labels"][:prompt_len])
    learned = [t for t in row["labels"] if t != IGNORE_INDEX]
    assert tok.decode(learned, skip_special_tokens=True) == " jambo"

    chat = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "hello"},
                    {"role": "assistant", "content": "jambo"},
                    {"role": "user", "content": "again"},
                    {"role": "assistant", "content": "tena"},
                ]
            }
        ],
    )
    examples, summary = read_examples(str(chat))
    assert summary.format == "chat"
    row = tokenize_example(examples[0], tok, 512)
    learned = tok.decode([t for t in row["labels"] if t != IGNORE_INDEX])
    assert "jambo" in learned and "tena" in learned
    assert "hello" not in learned and "again" not in learned


def test_missing_text_field_is_one_clear_sentence(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"body": "no text here"}])
    with pytest.raises(LingualiftError, match=r"bad.jsonl:1 has none of the fields 'text'"):
        read_examples(str(bad))
    with pytest.raises(LingualiftError, match=r"no 'text' field .* text_field="):
        read_examples(str(bad), data_format="text")


def test_split_is_deterministic_and_disjoint():
    examples = [Example(id=str(i), kind="text", text=f"t{i}") for i in range(40)]
    train, held = split_heldout(examples, 0.1, seed=3)
    assert len(held) == 4 and len(train) == 36
    assert {e.id for e in train}.isdisjoint(e.id for e in held)
    assert split_heldout(examples, 0.1, seed=3) == (train, held)
    # Ids keep their side when other rows are dropped.
    _, again_held = split_heldout(examples[:-1], 0.1, seed=3)
    assert {e.id for e in again_held} - {e.id for e in held} <= {e.id for e in train}


def test_packing_fills_rows_and_collate_pads(tok):
    examples = [Example(id=str(i), kind="text", text="abcdefghij") for i in range(5)]
    rows = [tokenize_example(e, tok, 512) for e in examples]
    packed = pack(rows, 16)
    assert sum(len(r["input_ids"]) for r in packed) == sum(len(r["input_ids"]) for r in rows)
    assert all(len(r["input_ids"]) == 16 for r in packed[:-1])
    batch = collate([*tokenize_examples(examples[:2], tok, 4), rows[0]], tok.pad_token_id)
    assert batch["input_ids"].shape == (3, len(rows[0]["input_ids"]))
    assert int(batch["attention_mask"][0].sum()) == 4
    assert (batch["labels"][0, 4:] == IGNORE_INDEX).all()
    assert batch["n_tokens"] == 4 + 4 + len(rows[0]["input_ids"])


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_packed_documents_do_not_see_each_other(tok, arch):
    import torch

    from lingualift.testing import tiny_causal_lm

    model, _ = tiny_causal_lm(arch, hidden_size=32, num_layers=2)
    texts = ["habari ya asubuhi", "jambo rafiki yangu", "karibu sana"]
    rows = [
        tokenize_example(Example(id=str(i), kind="text", text=t), tok, 512)
        for i, t in enumerate(texts)
    ]
    packed = pack(rows, 64)
    assert len(packed) == 1 and packed[0]["position_ids"][len(rows[0]["input_ids"])] == 0
    batch = collate(packed, tok.pad_token_id)
    assert "attention_mask" not in batch
    batch.pop("n_tokens"), batch.pop("labels")
    with torch.no_grad():
        together = model(**batch, use_cache=False).logits[0]
        start = 0
        for row in rows:
            n = len(row["input_ids"])
            alone = model(input_ids=torch.tensor([row["input_ids"]])).logits[0]
            torch.testing.assert_close(together[start : start + n], alone, atol=1e-5, rtol=1e-5)
            start += n
    # A document's first token is not predicted from the one before it.
    second = len(rows[0]["input_ids"])
    assert packed[0]["labels"][second] == IGNORE_INDEX


def test_selection_records_become_text_examples(tmp_path):
    path = write_records(
        [Record(id="a", text="Bonjour", lang="fr"), Record(id="b", text="Hola", lang="es")],
        tmp_path / "selection.parquet",
    )
    examples, summary = read_selection(str(path))
    assert [e.text for e in examples] == ["Bonjour", "Hola"]
    assert summary.role == "selection" and summary.languages == {"fr": 1, "es": 1}
