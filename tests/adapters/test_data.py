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

from ..helpers import write_jsonl


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
    with pytest.raises(LingualiftError, match=r"bad.jsonl:1 has none of the columns 'text'"):
        read_examples(str(bad))
    with pytest.raises(LingualiftError, match=r"no 'text' column .* text_field="):
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


def test_selection_records_become_text_examples(tmp_path):
    path = write_records(
        [Record(id="a", text="Bonjour", lang="fr"), Record(id="b", text="Hola", lang="es")],
        tmp_path / "selection.parquet",
    )
    examples, summary = read_selection(str(path))
    assert [e.text for e in examples] == ["Bonjour", "Hola"]
    assert summary.role == "selection" and summary.languages == {"fr": 1, "es": 1}


@pytest.mark.parametrize("arch", ["gemma3", "llama", "qwen2"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_documents_see_only_themselves(tok, arch, attn, one_thread):
    """With packing, each document's logits (and loss) are those it gets alone."""
    import torch

    from lingualift.adapters.data import model_inputs
    from lingualift.testing import tiny_causal_lm

    model, _ = tiny_causal_lm(arch, hidden_size=32, num_layers=2, attn_implementation=attn)
    texts = ["Habari ya asubuhi", "Jambo", "Karibu sana nyumbani kwetu", "Asante"]
    examples = [Example(id=str(i), kind="text", text=t) for i, t in enumerate(texts)]
    rows = [tokenize_example(e, tok, 512) for e in examples]
    packed = pack(rows, 24)  # several documents per row, some cut across two rows
    batch = collate(packed, tok.pad_token_id)
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 3
    with torch.no_grad():
        logits = model(**{k: v for k, v in model_inputs(batch).items() if k != "labels"}).logits
        out = model(**model_inputs(batch))
    starts = batch["position_ids"] == 0
    alone_loss, alone_tokens = 0.0, 0
    for i, row in enumerate(packed):
        cuts = [j for j in range(len(row["input_ids"])) if row["position_ids"][j] == 0]
        for begin, end in zip(cuts, [*cuts[1:], len(row["input_ids"])], strict=True):
            ids = torch.tensor([row["input_ids"][begin:end]])
            with torch.no_grad():
                alone = model(input_ids=ids).logits
            torch.testing.assert_close(logits[i, begin:end], alone[0], atol=1e-5, rtol=1e-5)
            if end - begin > 1:
                step = torch.nn.functional.cross_entropy(alone[0, :-1], ids[0, 1:], reduction="sum")
                alone_loss += float(step)
                alone_tokens += end - begin - 1
    assert starts.sum() >= 5
    # The model's loss over the packed batch is the mean of the documents' losses alone.
    assert float(out.loss) == pytest.approx(alone_loss / alone_tokens, abs=1e-5)


def test_held_out_examples_round_trip_and_a_damaged_line_is_named(tmp_path):
    from lingualift.adapters.data import HELDOUT_FILE, read_examples_file, write_examples

    examples = [
        Example(id="a", kind="text", text="habari", source="d.jsonl"),
        Example(id="b", kind="prompt_completion", prompt="Q:", completion=" jambo"),
        Example(id="c", kind="chat", messages=[{"role": "assistant", "content": "sawa"}]),
    ]
    path = write_examples(examples, tmp_path / HELDOUT_FILE)
    assert read_examples_file(path) == examples
    path.write_text(path.read_text() + "{oops\n")
    with pytest.raises(LingualiftError, match=r"heldout.jsonl:4: malformed JSON"):
        read_examples_file(path)
    path.write_text('{"text": "no id or kind"}\n')
    with pytest.raises(LingualiftError, match=r"heldout.jsonl:1: not an example"):
        read_examples_file(path)
