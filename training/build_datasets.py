"""Build the labelled sets for the built-in routers from ``../shared/data``.

``python -m llm_router.training.build_datasets [--shared-data DIR] [--out DIR]``

Writes to ``training/data/`` (see its README for what each set holds and why
the held-out sets are honest):

- ``task_train.jsonl`` / ``task_heldout.jsonl``: the 11 task classes;
- ``complexity_train.jsonl`` / ``complexity_heldout.jsonl``: the 7 complexity
  classes with six per-dimension scores in [0, 1];
- ``banking77_groups.json``: the 77 Banking77 intents grouped into 10 support
  routes for the ``intent_router`` example (Banking77's own CSVs are used as-is);
- ``manifest.json``: the shared files' sha256, row counts per label, the seed.

Rows store their own text with ``{{i}}`` placeholders for shared text plus a
``refs`` list (see ``sources``), so no shared data is copied into the repo;
``llm-router train`` resolves them against ``--shared-data``. The build is
deterministic for a given seed and shared data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sources import DataError, SharedData, is_heldout
from .templates import (
    CONSTRAINT_LEADS,
    CONSTRAINTS,
    FEW_SHOT_LAYOUTS,
    FEW_SHOT_PAIR_LAYOUTS,
    FEW_SHOT_TASKS,
    FILLERS,
    TEMPLATES,
)
from .train import SCORE_NAMES

DOLLY_TASK = {"open_qa": "Open QA", "general_qa": "Open QA", "closed_qa": "Closed QA",
              "classification": "Classification", "brainstorming": "Brainstorming",
              "information_extraction": "Extraction", "summarization": "Summarization",
              "creative_writing": "Text Generation"}
# MMLU subjects whose questions are calculations: math problems, like GSM8K, are "Other" for the task
# router (no task class fits them; a policy can send Other to a model that reasons) and
# "Reasoning" for the complexity router.
MMLU_MATH = {"mmlu_abstract_algebra", "mmlu_college_mathematics", "mmlu_elementary_mathematics",
             "mmlu_high_school_mathematics", "mmlu_high_school_statistics", "mmlu_formal_logic"}
MMLU_PASSAGE_MARK = "refers to the following information"

# How a user pastes an instruction and its reference text; picked per row by hash (the first layout is listed
# twice: instruction first, then the text, is the most common).
CONTEXT_LAYOUTS = ["{{0}}\n\n{{1}}", "{{0}}\n\n{{1}}", "{{0}}\n\"\"\"\n{{1}}\n\"\"\"", "{{1}}\n\n{{0}}",
                   "{{0}}\n\n---\n{{1}}"]

# The 77 Banking77 intents grouped into 10 support routes (each intent in exactly one group).
BANKING77_GROUPS: dict[str, list[str]] = {
    "card_delivery": ["activate_my_card", "card_arrival", "card_delivery_estimate", "card_linking",
                      "get_physical_card", "order_physical_card", "getting_spare_card", "card_about_to_expire"],
    "card_usage": ["card_not_working", "card_acceptance", "card_swallowed", "contactless_not_working",
                   "pin_blocked", "change_pin", "apple_pay_or_google_pay", "visa_or_mastercard",
                   "supported_cards_and_currencies"],
    "virtual_cards": ["get_disposable_virtual_card", "getting_virtual_card", "disposable_card_limits",
                      "virtual_card_not_working"],
    "security": ["lost_or_stolen_card", "lost_or_stolen_phone", "compromised_card", "card_payment_not_recognised",
                 "cash_withdrawal_not_recognised", "direct_debit_payment_not_recognised", "passcode_forgotten"],
    "top_up": ["automatic_top_up", "pending_top_up", "top_up_by_bank_transfer_charge", "top_up_by_card_charge",
               "top_up_by_cash_or_cheque", "top_up_failed", "top_up_limits", "top_up_reverted",
               "topping_up_by_card", "verify_top_up"],
    "transfers": ["beneficiary_not_allowed", "cancel_transfer", "declined_transfer", "failed_transfer",
                  "pending_transfer", "transfer_into_account", "transfer_not_received_by_recipient",
                  "transfer_timing", "receiving_money", "balance_not_updated_after_bank_transfer"],
    "card_payments": ["card_payment_fee_charged", "card_payment_wrong_exchange_rate", "pending_card_payment",
                      "reverted_card_payment?", "transaction_charged_twice", "declined_card_payment",
                      "Refund_not_showing_up", "request_refund", "extra_charge_on_statement"],
    "cash_and_atm": ["atm_support", "cash_withdrawal_charge", "declined_cash_withdrawal", "pending_cash_withdrawal",
                     "wrong_amount_of_cash_received", "wrong_exchange_rate_for_cash_withdrawal",
                     "balance_not_updated_after_cheque_or_cash_deposit"],
    "exchange_and_fees": ["exchange_charge", "exchange_rate", "exchange_via_app", "fiat_currency_support",
                          "country_support", "transfer_fee_charged"],
    "account_and_identity": ["age_limit", "edit_personal_details", "terminate_account", "unable_to_verify_identity",
                             "verify_my_identity", "verify_source_of_funds", "why_verify_identity"],
}

TRAIN, HELDOUT = "train", "heldout"
DEFAULT_OUT = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Ref:
    """A shared field used as a template filler (resolved at training time)."""

    ref: str


Filler = str | Ref


@dataclass
class Row:
    text: str
    label: str
    origin: str
    """Where the row came from (``dolly/closed_qa``, ``template/rewrite``...): reports break down by it."""
    group: str
    """Rows of one group (one template, one shared row) stay together when training splits off validation."""
    refs: list[str] = field(default_factory=list)
    scores: dict[str, float] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "label": self.label, "origin": self.origin, "group": self.group}
        if self.refs:
            out["refs"] = self.refs
        if self.scores is not None:
            out["scores"] = {name: round(self.scores[name], 3) for name in SCORE_NAMES}
        return out


def pool(text: str) -> str:
    return HELDOUT if is_heldout(text) else TRAIN


class Builder:
    """Shared rows by split, template pools, and the generators both sets draw on."""

    def __init__(self, shared: SharedData, seed: int) -> None:
        self.shared = shared
        self.seed = seed
        contaminated = shared.contaminated
        self.dolly = {TRAIN: [], HELDOUT: []}  # (index, row)
        for index, row in enumerate(shared.rows("dolly")):
            self.dolly[pool(row["instruction"])].append((index, row))
        self.mbpp = {TRAIN: [], HELDOUT: []}
        for index, row in enumerate(shared.rows("mbpp")):
            self.mbpp[pool(row["text"])].append(index)
        self.humaneval = list(range(len(shared.rows("humaneval"))))
        # GSM8K: the train file trains, RouteLLM's copy of the GSM8K *test* problems (hash-held-out part) tests.
        self.gsm8k_train = [i for i, row in enumerate(shared.rows("gsm8k")) if not is_heldout(row["question"])]
        self.gsm8k_heldout = [i for i, row in enumerate(shared.rows("routellm_gsm8k"))
                              if is_heldout(row["prompt"]) and row["prompt"] not in contaminated]
        self.mmlu: dict[str, dict[str, list[tuple[str, int]]]] = {
            kind: {TRAIN: [], HELDOUT: []} for kind in ("math", "passage", "knowledge")}
        for source in shared.mmlu_sources:
            for index, row in enumerate(shared.rows(source)):
                prompt = row["prompt"]
                if prompt in contaminated:
                    continue
                kind = "math" if source in MMLU_MATH else "passage" if MMLU_PASSAGE_MARK in prompt else "knowledge"
                self.mmlu[kind][pool(prompt)].append((source, index))
        self.banking = {TRAIN: "banking77_train", HELDOUT: "banking77_test"}
        # Template fillers drawn from shared rows, per pool.
        self.passages = {p: [Ref(f"dolly:{i}:context") for i, r in self.dolly[p] if r["context"]]
                         + [Ref(f"dolly:{i}:response") for i, r in self.dolly[p] if len(r["response"]) >= 250]
                         for p in (TRAIN, HELDOUT)}
        self.short_texts = {p: [Ref(f"dolly:{i}:response") for i, r in self.dolly[p] if 40 <= len(r["response"]) < 300]
                            for p in (TRAIN, HELDOUT)}
        self.codes = {TRAIN: [Ref(f"mbpp:{i}:code") for i in self.mbpp[TRAIN]],
                      HELDOUT: [Ref(f"mbpp:{i}:code") for i in self.mbpp[HELDOUT]]
                      + [Ref(f"humaneval:{i}:prompt") for i in self.humaneval]}
        self.code_tasks = {p: [Ref(f"mbpp:{i}:text") for i in self.mbpp[p]] for p in (TRAIN, HELDOUT)}

    def rng(self, name: str) -> random.Random:
        """One generator per stream, so adding a stream never shifts another's draws."""
        return random.Random(f"{self.seed}:{name}")

    def dolly_text(self, index: int, row: dict[str, Any]) -> tuple[str, list[str]]:
        refs = [f"dolly:{index}:instruction"]
        if not row["context"]:
            return "{{0}}", refs
        digest = hashlib.sha256(row["instruction"].encode("utf-8")).digest()
        layout = CONTEXT_LAYOUTS[digest[1] % len(CONTEXT_LAYOUTS)]
        return layout, [*refs, f"dolly:{index}:context"]

    def banking_ref(self, split: str, rng: random.Random) -> Ref:
        source = self.banking[split]
        return Ref(f"{source}:{rng.randrange(len(self.shared.rows(source)))}:text")

    # --- templates
    def slot_filler(self, slot: str, split: str, rng: random.Random) -> Filler:
        if slot in ("a",):
            return str(rng.randint(12, 999))
        if slot == "b":
            return str(rng.randint(2, 99))
        if slot == "k":
            return str(rng.randint(3, 8))
        if slot == "passage":  # mostly long, sometimes a sentence or two: length must not give the class away
            return rng.choice(self.passages[split]) if rng.random() < 0.7 else self.slot_filler("sentence", split, rng)
        if slot == "message":
            return self.banking_ref(split, rng)
        if slot == "code":
            return rng.choice(self.codes[split])
        if slot == "code_task":
            return rng.choice(self.code_tasks[split])
        if slot == "sentence":  # mostly short, sometimes a whole passage
            draw = rng.random()
            if draw < 0.25:
                return self.banking_ref(split, rng)
            if draw < 0.45:
                return rng.choice(self.short_texts[split])
            if draw < 0.6:
                return rng.choice(self.passages[split])
        return rng.choice(pooled(FILLERS[slot], split, slot))

    def fill(self, template: str, split: str, rng: random.Random) -> tuple[str, list[str]]:
        refs: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            value = self.slot_filler(match.group(1), split, rng)
            if isinstance(value, Ref):
                refs.append(value.ref)
                return placeholder(len(refs) - 1)
            return value

        return SLOT.sub(substitute, template), refs

    def templated(self, kind: str, split: str, count: int, label: str,
                  scores: Callable[[str], dict[str, float]] | None = None) -> list[Row]:
        """``count`` distinct prompts from the split's templates of ``kind``, spread evenly over the templates.

        Round-robin rather than random choice, so no single template's wording dominates a class (in
        training, or in the held-out score)."""
        templates = pooled(TEMPLATES[kind], split, f"templates[{kind}]")
        rng = self.rng(f"{kind}:{split}:{label}")
        rng.shuffle(templates)
        rows: dict[str, Row] = {}
        exhausted: set[str] = set()
        while len(rows) < count and len(exhausted) < len(templates):
            for template in templates:
                if len(rows) >= count:
                    break
                if template in exhausted:
                    continue
                for _ in range(8):  # a few tries for a filling not drawn before
                    text, refs = self.fill(template, split, rng)
                    key = text + "\x00" + "\x00".join(refs)
                    if key not in rows:
                        group = f"template/{kind}/{TEMPLATES[kind].index(template)}"
                        rows[key] = Row(text, label, f"template/{kind}", group, refs,
                                        scores(template) if scores else None)
                        break
                else:
                    exhausted.add(template)
        return list(rows.values())

    def few_shot(self, split: str, count: int) -> list[Row]:
        """k-shot prompts from hand-written pairs and from shared Q/A rows, ending in an open query."""
        rng = self.rng(f"few_shot:{split}")
        tasks = [task for task in FEW_SHOT_TASKS if pool(task[0]) == split]
        layouts = pooled(FEW_SHOT_LAYOUTS, split, "few-shot layouts")
        rows: dict[str, Row] = {}
        for _ in range(count * 20):
            if len(rows) >= count:
                break
            layout, pair_layout, k = rng.choice(layouts), rng.choice(FEW_SHOT_PAIR_LAYOUTS), rng.randint(2, 5)
            refs: list[str] = []
            if rng.random() < 0.5:
                instruction, pairs, in_label, out_label = rng.choice(tasks)
                *shots, (query, _) = rng.sample(pairs, min(k + 1, len(pairs)))
                base = "simple"
            else:
                instruction, in_label, out_label, base, pair_refs, last = self._shared_shots(split, k, rng)
                shots = []
                for question_ref, answer_ref in pair_refs:
                    refs += [question_ref, answer_ref]
                    shots.append((placeholder(len(refs) - 2), placeholder(len(refs) - 1)))
                refs.append(last)
                query = placeholder(len(refs) - 1)
            examples = [fmt(pair_layout, in_label=in_label, out_label=out_label, input=i, output=o) for i, o in shots]
            text = fmt(layout, instruction=instruction, examples="\n\n".join(examples), in_label=in_label,
                       out_label=out_label, query=query, k=str(len(examples)))
            key = text + "\x00" + "\x00".join(refs)
            if key not in rows:
                profile = dict(PROFILES[base])
                profile["few_shot"] = min(1.0, 0.3 + 0.15 * len(examples))
                profile["constraint"] = max(profile["constraint"], 0.2)
                rows[key] = Row(text, "Few-Shot", "template/few_shot", f"few_shot/{instruction}", refs, profile)
        return list(rows.values())

    def _shared_shots(self, split: str, k: int, rng: random.Random
                      ) -> tuple[str, str, str, str, list[tuple[str, str]], str]:
        """Worked examples from shared rows: GSM8K solutions, Banking77 intents, or Dolly answers."""
        draw = rng.random()
        if draw < 0.4:
            if split == TRAIN:
                picked = rng.sample(self.gsm8k_train, k + 1)
                pairs = [(f"gsm8k:{i}:question", f"gsm8k:{i}:answer") for i in picked[:-1]]
                last = f"gsm8k:{picked[-1]}:question"
            else:  # the test problems, with the strong model's worked answers as the examples
                picked = rng.sample(self.gsm8k_heldout, k + 1)
                pairs = [(f"routellm_gsm8k:{i}:prompt", f"routellm_gsm8k:{i}:gpt-4-1106-preview_response")
                         for i in picked[:-1]]
                last = f"routellm_gsm8k:{picked[-1]}:prompt"
            return "Solve the problem.", "Question", "Answer", "reasoning", pairs, last
        if draw < 0.7:
            name = self.banking[split]
            picked = rng.sample(range(len(self.shared.rows(name))), k + 1)
            pairs = [(f"{name}:{i}:text", f"{name}:{i}:category") for i in picked[:-1]]
            return "Classify the customer message.", "Message", "Intent", "simple", pairs, f"{name}:{picked[-1]}:text"
        candidates = [i for i, r in self.dolly[split] if not r["context"] and len(r["response"]) < 300]
        picked = rng.sample(candidates, k + 1)
        pairs = [(f"dolly:{i}:instruction", f"dolly:{i}:response") for i in picked[:-1]]
        return "Answer the question.", "Q", "A", "simple", pairs, f"dolly:{picked[-1]}:instruction"

    def constrained(self, split: str, count: int) -> list[Row]:
        """A plain instruction (shared or templated) with one to three explicit output constraints."""
        rng = self.rng(f"constraint:{split}")
        constraints = pooled(CONSTRAINTS, split, "constraints")
        leads = pooled(CONSTRAINT_LEADS, split, "constraint leads")
        plain = ("open_qa", "general_qa", "brainstorming", "creative_writing")
        bases = [(f"dolly:{i}:instruction", PROFILE_OF_DOLLY[r["category"]]) for i, r in self.dolly[split]
                 if not r["context"] and r["category"] in plain]
        rows: dict[str, Row] = {}
        for _ in range(count * 20):
            if len(rows) >= count:
                break
            refs: list[str] = []
            if rng.random() < 0.5:
                ref, base_profile = rng.choice(bases)
                refs.append(ref)
                base = "{{0}}"
            else:
                kind = rng.choice(["text_generation", "brainstorming", "open_qa"])
                base, refs = self.fill(rng.choice(pooled(TEMPLATES[kind], split, kind)), split, rng)
                base_profile = {"text_generation": "creative", "brainstorming": "brainstorm",
                                "open_qa": "simple_knowledge"}[kind]
            picked = [self.fill(c, split, rng)[0] for c in rng.sample(constraints, rng.randint(1, 3))]
            text = fmt(rng.choice(leads), base=base, constraints=" ".join(picked),
                       constraint_lines="\n".join(f"- {c}" for c in picked))
            key = text + "\x00" + "\x00".join(refs)
            if key not in rows:
                profile = dict(PROFILES[base_profile])
                profile["constraint"] = min(1.0, 0.4 + 0.2 * len(picked))
                rows[key] = Row(text, "Constraint", "template/constraint", f"constraint/{picked[0]}", refs, profile)
        return list(rows.values())


SLOT = re.compile(r"\{(\w+)\}")


def placeholder(index: int) -> str:
    return "{{" + str(index) + "}}"


def fmt(template: str, **values: str) -> str:
    """``str.format`` for our layouts, without choking on braces inside the values."""
    return SLOT.sub(lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), template)


def pooled(items: Sequence[str], split: str, what: str) -> list[str]:
    chosen = [item for item in items if pool(item) == split]
    if not chosen:
        raise DataError(f"no {split} entries among {what}: add more so both pools have some")
    return chosen


# Per-dimension targets by where a prompt comes from. Documented in training/data/README.md;
# "how much of each ability does answering this take", in [0, 1], set by source kind, with the
# data-derived adjustments applied where the rows are built.
PROFILES: dict[str, dict[str, float]] = {
    #                   creativity reasoning constraint domain  context few_shot
    "creative":         dict(zip(SCORE_NAMES, (0.9, 0.2, 0.1, 0.1, 0.0, 0.0), strict=True)),
    "brainstorm":       dict(zip(SCORE_NAMES, (0.7, 0.3, 0.1, 0.2, 0.0, 0.0), strict=True)),
    "reasoning":        dict(zip(SCORE_NAMES, (0.05, 0.8, 0.1, 0.2, 0.0, 0.0), strict=True)),
    "code":             dict(zip(SCORE_NAMES, (0.2, 0.6, 0.2, 0.5, 0.0, 0.0), strict=True)),
    "math":             dict(zip(SCORE_NAMES, (0.05, 0.7, 0.1, 0.6, 0.0, 0.0), strict=True)),
    "knowledge":        dict(zip(SCORE_NAMES, (0.05, 0.3, 0.1, 0.7, 0.0, 0.0), strict=True)),
    "passage":          dict(zip(SCORE_NAMES, (0.05, 0.4, 0.1, 0.5, 0.8, 0.0), strict=True)),
    "context":          dict(zip(SCORE_NAMES, (0.1, 0.3, 0.1, 0.1, 0.9, 0.0), strict=True)),
    "simple":           dict(zip(SCORE_NAMES, (0.1, 0.1, 0.0, 0.1, 0.0, 0.0), strict=True)),
    "simple_knowledge": dict(zip(SCORE_NAMES, (0.1, 0.2, 0.0, 0.3, 0.0, 0.0), strict=True)),
}
PROFILE_OF_DOLLY = {"creative_writing": "creative", "brainstorming": "brainstorm", "open_qa": "simple_knowledge",
                    "general_qa": "simple_knowledge", "classification": "simple", "closed_qa": "context",
                    "information_extraction": "context", "summarization": "context"}
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def gsm8k_profile(question: str) -> dict[str, float]:
    """More quantities in a word problem -> more steps to combine them."""
    profile = dict(PROFILES["reasoning"])
    profile["reasoning"] = min(1.0, max(0.5, 0.4 + 0.08 * len(NUMBER.findall(question))))
    return profile


def mmlu_profile(row: dict[str, str], kind: str) -> dict[str, float]:
    """Questions the weak (and the strong) model got wrong take more knowledge: RouteLLM's outcome columns."""
    profile = dict(PROFILES[kind])
    weak_wrong = row["mistralai/Mixtral-8x7B-Instruct-v0.1"] != "True"
    strong_wrong = row["gpt-4-1106-preview"] != "True"
    profile["domain_knowledge"] = min(1.0, profile["domain_knowledge"] - 0.1 + 0.2 * weak_wrong + 0.2 * strong_wrong)
    return profile


def sample(items: Sequence[Any], count: int, rng: random.Random) -> list[Any]:
    return list(items) if len(items) <= count else rng.sample(list(items), count)


# ----------------------------------------------------------------------------------------------- task set
# Rows per source and split: (train, held-out). Templated classes make up what Dolly lacks.
TASK_SIZES = {
    "mmlu_knowledge": (220, 60), "mmlu_passage": (120, 40), "mmlu_math": (90, 30), "gsm8k": (220, 70),
    "mbpp": (320, 60), "humaneval": (0, 164),
    "chatbot": (420, 130), "rewrite": (420, 130), "other": (260, 90), "text_generation": (360, 110),
    "brainstorming": (300, 100), "classification": (300, 100), "closed_qa": (450, 80), "extraction": (500, 100),
    "summarization": (500, 100), "open_qa": (120, 40), "code": (200, 60),
}
TEMPLATE_TASK = {"chatbot": "Chatbot", "rewrite": "Rewrite", "other": "Other", "text_generation": "Text Generation",
                 "brainstorming": "Brainstorming", "classification": "Classification", "closed_qa": "Closed QA",
                 "extraction": "Extraction", "summarization": "Summarization", "open_qa": "Open QA",
                 "code": "Code Generation"}


def build_task(builder: Builder, split: str) -> list[Row]:
    index = 0 if split == TRAIN else 1
    rng = builder.rng(f"task:{split}")
    rows: list[Row] = []
    for i, row in builder.dolly[split]:
        text, refs = builder.dolly_text(i, row)
        rows.append(Row(text, DOLLY_TASK[row["category"]], f"dolly/{row['category']}", f"dolly:{i}", refs))
    for kind, label in (("knowledge", "Open QA"), ("passage", "Closed QA"), ("math", "Other")):
        for source, i in sample(builder.mmlu[kind][split], TASK_SIZES[f"mmlu_{kind}"][index], rng):
            rows.append(Row("{{0}}", label, f"mmlu/{kind}", f"{source}:{i}", [f"{source}:{i}:prompt"]))
    if split == TRAIN:
        for i in sample(builder.gsm8k_train, TASK_SIZES["gsm8k"][0], rng):
            rows.append(Row("{{0}}", "Other", "gsm8k", f"gsm8k:{i}", [f"gsm8k:{i}:question"]))
    else:
        for i in sample(builder.gsm8k_heldout, TASK_SIZES["gsm8k"][1], rng):
            rows.append(Row("{{0}}", "Other", "routellm_gsm8k", f"routellm_gsm8k:{i}", [f"routellm_gsm8k:{i}:prompt"]))
        for i in builder.humaneval:
            rows.append(Row("{{0}}", "Code Generation", "humaneval", f"humaneval:{i}", [f"humaneval:{i}:prompt"]))
    for i in sample(builder.mbpp[split], TASK_SIZES["mbpp"][index], rng):
        rows.append(Row("{{0}}", "Code Generation", "mbpp", f"mbpp:{i}", [f"mbpp:{i}:text"]))
    for kind, label in TEMPLATE_TASK.items():
        rows += builder.templated(kind, split, TASK_SIZES[kind][index], label)
    return rows


# ----------------------------------------------------------------------------------------- complexity set
COMPLEXITY_SIZES = {
    "creative_templates": (260, 80), "brainstorm_templates": (120, 40), "gsm8k": (300, 80), "mbpp": (90, 20),
    "humaneval": (0, 40), "mmlu_math": (110, 30), "mmlu_knowledge": (420, 110), "mmlu_passage": (100, 30),
    "context_templates": (240, 70), "few_shot": (420, 120), "constraint": (440, 130), "chatbot": (220, 70),
    "other": (110, 35), "dolly_simple": (110, 30),
}


def build_complexity(builder: Builder, split: str) -> list[Row]:
    index = 0 if split == TRAIN else 1
    rng = builder.rng(f"complexity:{split}")
    size = {name: sizes[index] for name, sizes in COMPLEXITY_SIZES.items()}
    rows: list[Row] = []
    simple: list[Row] = []
    for i, row in builder.dolly[split]:
        category = row["category"]
        text, refs = builder.dolly_text(i, row)
        profile = dict(PROFILES[PROFILE_OF_DOLLY[category]])
        if category in ("creative_writing", "brainstorming"):
            rows.append(Row(text, "Creativity", f"dolly/{category}", f"dolly:{i}", refs, profile))
        elif row["context"]:
            rows.append(Row(text, "Contextual-Knowledge", f"dolly/{category}", f"dolly:{i}", refs, profile))
        elif category in ("open_qa", "general_qa") and len(row["instruction"]) < 120:
            simple.append(Row(text, "No-Label-Reason", f"dolly/{category}", f"dolly:{i}", refs, profile))
    rows += sample(simple, size["dolly_simple"], rng)
    rows += builder.templated("text_generation", split, size["creative_templates"], "Creativity",
                              lambda _t: dict(PROFILES["creative"]))
    rows += builder.templated("brainstorming", split, size["brainstorm_templates"], "Creativity",
                              lambda _t: dict(PROFILES["brainstorm"]))
    if split == TRAIN:
        gsm = builder.shared.rows("gsm8k")
        for i in sample(builder.gsm8k_train, size["gsm8k"], rng):
            rows.append(Row("{{0}}", "Reasoning", "gsm8k", f"gsm8k:{i}", [f"gsm8k:{i}:question"],
                            gsm8k_profile(gsm[i]["question"])))
    else:
        gsm = builder.shared.rows("routellm_gsm8k")
        for i in sample(builder.gsm8k_heldout, size["gsm8k"], rng):
            rows.append(Row("{{0}}", "Reasoning", "routellm_gsm8k", f"routellm_gsm8k:{i}",
                            [f"routellm_gsm8k:{i}:prompt"], gsm8k_profile(gsm[i]["prompt"])))
        for i in sample(builder.humaneval, size["humaneval"], rng):
            rows.append(Row("{{0}}", "Reasoning", "humaneval", f"humaneval:{i}", [f"humaneval:{i}:prompt"],
                            dict(PROFILES["code"])))
    for i in sample(builder.mbpp[split], size["mbpp"], rng):
        rows.append(Row("{{0}}", "Reasoning", "mbpp", f"mbpp:{i}", [f"mbpp:{i}:text"], dict(PROFILES["code"])))
    for kind, label in (("math", "Reasoning"), ("knowledge", "Domain-Knowledge"), ("passage", "Contextual-Knowledge")):
        for source, i in sample(builder.mmlu[kind][split], size[f"mmlu_{kind}"], rng):
            profile = mmlu_profile(builder.shared.rows(source)[i], kind)
            rows.append(Row("{{0}}", label, f"mmlu/{kind}", f"{source}:{i}", [f"{source}:{i}:prompt"], profile))
    per_context = size["context_templates"] // 3
    for kind in ("closed_qa", "extraction", "summarization"):
        rows += builder.templated(kind, split, per_context, "Contextual-Knowledge",
                                  lambda _t: dict(PROFILES["context"]))
    rows += builder.few_shot(split, size["few_shot"])
    rows += builder.constrained(split, size["constraint"])
    rows += builder.templated("chatbot", split, size["chatbot"], "No-Label-Reason", lambda _t: dict(PROFILES["simple"]))
    rows += builder.templated("other", split, size["other"], "No-Label-Reason", lambda _t: dict(PROFILES["simple"]))
    return rows


# ------------------------------------------------------------------------------------------------- output
def check_groups(categories: list[str]) -> dict[str, str]:
    flat = {intent: group for group, intents in BANKING77_GROUPS.items() for intent in intents}
    counted = Counter(intent for intents in BANKING77_GROUPS.values() for intent in intents)
    duplicated = [intent for intent, n in counted.items() if n > 1]
    missing = sorted(set(categories) - set(flat))
    unknown = sorted(set(flat) - set(categories))
    if duplicated or missing or unknown:
        raise DataError(f"Banking77 grouping is inconsistent: duplicated {duplicated}, missing {missing}, "
                        f"unknown {unknown}")
    return {intent: flat[intent] for intent in categories}


def write_jsonl(path: Path, rows: list[Row]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row.as_json(), ensure_ascii=False) + "\n")


def build(shared_dir: Path, out_dir: Path, seed: int = 0) -> dict[str, Any]:
    shared = SharedData(shared_dir)
    builder = Builder(shared, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = {
        "task_train": build_task(builder, TRAIN), "task_heldout": build_task(builder, HELDOUT),
        "complexity_train": build_complexity(builder, TRAIN), "complexity_heldout": build_complexity(builder, HELDOUT),
    }
    train_texts = {(r.text, tuple(r.refs)) for name in ("task_train", "complexity_train") for r in sets[name]}
    for name in ("task_heldout", "complexity_heldout"):
        leaked = [r for r in sets[name] if (r.text, tuple(r.refs)) in train_texts]
        if leaked:
            raise DataError(f"{len(leaked)} rows of {name} also occur in a training set, e.g. {leaked[0]}")
    used_sources: set[str] = {"banking77_train", "banking77_test"}
    for name, rows in sets.items():
        write_jsonl(out_dir / f"{name}.jsonl", rows)
        used_sources.update(ref.split(":")[0] for row in rows for ref in row.refs)
    categories = json.loads((shared.root / "banking77" / "categories.json").read_text())
    groups = check_groups(categories)
    (out_dir / "banking77_groups.json").write_text(json.dumps(groups, indent=1) + "\n")
    manifest = {
        "seed": seed,
        "shared_files": shared.checksums(used_sources),
        "sets": {name: {"rows": len(rows), "labels": dict(sorted(Counter(r.label for r in rows).items())),
                        "origins": dict(sorted(Counter(r.origin for r in rows).items()))}
                 for name, rows in sets.items()},
        "banking77_groups": dict(sorted(Counter(groups.values()).items())),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_router.training.build_datasets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=Path("../shared/data"),
                        help="the shared data directory (default: ../shared/data, relative to the current directory)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        manifest = build(args.shared_data, args.out, args.seed)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, info in manifest["sets"].items():
        print(f"{name}: {info['rows']} rows  " + ", ".join(f"{k} {v}" for k, v in info["labels"].items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
