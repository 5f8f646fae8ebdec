"""A tiny tokenizer and a tiny random model, trained and built locally, for fast CPU tests.

Nothing is downloaded: :func:`tiny_tokenizer` trains a byte-level BPE (about 512 tokens) with the
``tokenizers`` library on a small fixed corpus of python, math and LaTeX text that includes the TIR
fences (```` ```python ```` and ```` ```output ````), and wraps it as a transformers
``PreTrainedTokenizerFast`` with eos/pad tokens and a ChatML-like chat template. Because it is
byte-level, every string (without lone surrogates) round-trips through encode/decode exactly.

:func:`tiny_model` builds a randomly initialised ``Qwen2ForCausalLM`` (hidden 64, 2 layers by
default) whose vocabulary matches the tokenizer. A GRPO-style step with it takes about 0.1 s on CPU.

Process-wide cache (documented, explicit): the *trained tokenizer's JSON* is cached per process
(``functools.lru_cache``), so training happens once; every call returns a fresh wrapper object, so
a caller that adds tokens or changes settings never affects another caller.

Example:
    >>> from thor.testing import tiny_tokenizer, tiny_model
    >>> tok = tiny_tokenizer()
    >>> ids = tok.encode("```python\\nprint(2 ** 10)\\n```")
    >>> tok.decode(ids)
    '```python\\nprint(2 ** 10)\\n```'
    >>> model = tiny_model(seed=0)
    >>> model.config.vocab_size == len(tok)
    True
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast, Qwen2ForCausalLM

__all__ = [
    "TINY_CHAT_TEMPLATE",
    "TINY_SPECIAL_TOKENS",
    "TINY_VOCAB_SIZE",
    "tiny_model",
    "tiny_tokenizer",
]

TINY_VOCAB_SIZE = 512
"""Target vocabulary size of the BPE (special tokens included)."""

TINY_SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>")
"""Special tokens, in id order: eos, pad, chat turn start, chat turn end."""

TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""A ChatML-like template: ``<|im_start|>role\\ncontent<|im_end|>\\n`` per message."""

_CORPUS: tuple[str, ...] = (
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "Let me compute this with python.\n```python\nprint(2 ** 10)\n```\n```output\n1024\n```\n",
    "```python\nfrom sympy import symbols, solve\nx = symbols('x')\nprint(solve(x**2 - 5*x + 6, x))\n```\n",
    "```output\n[2, 3]\n```\nSo the roots are 2 and 3, and the answer is \\boxed{5}.",
    "```python\nimport math\nprint(math.comb(10, 3))\nprint(math.gcd(84, 36), math.lcm(4, 6))\n```\n",
    "```output\n120\n12 12\n```\n",
    "```python\ntotal = 0\nfor k in range(1, 101):\n    total += k * k\nprint(total)\n```\n",
    "```output\n338350\n```\nThe sum of the first 100 squares is 338350.",
    "```python\nprint(pow(7, 222, 1000))\nprint(pow(17, -1, 101))\n```\n```output\n49\n6\n```\n",
    "```python\ndef f(n):\n    return sum(int(d) for d in str(n))\nprint(f(2 ** 100))\n```\n",
    "```output\nTraceback (most recent call last):\nZeroDivisionError: division by zero\n```\n",
    "```output\nNameError: name 'y' is not defined\n```\nI forgot to define y. Let me fix that.",
    "We have $x^2 + y^2 = 25$ and $x + y = 7$, so $xy = \\frac{(x+y)^2 - (x^2+y^2)}{2} = 12$.",
    "The area is $\\frac{1}{2} \\cdot 6 \\cdot 8 = 24$, and $\\sqrt{6^2 + 8^2} = 10$.",
    "Therefore $\\binom{10}{3} = 120$ and $\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$.",
    "Since $a \\equiv 3 \\pmod{7}$, we get $a^{2} \\equiv 2 \\pmod{7}$. Hence \\boxed{2}.",
    "Let $f(x) = 3x + 4$. Then $f(f(x)) = 9x + 16$, so $f(f(2)) = 34$.",
    "The probability is $\\frac{3}{8}$; the expected value is $\\frac{15}{4}$.",
    "First, 4821 times 3967 equals 19124907. Next, the remainder of 2^50 modulo 13 is 4.",
    "Step 1: Find the greatest common divisor of 84 and 126. Step 2: Divide both numbers by it.",
    "What is the sum of the digits of 3^20? How many positive divisors does 360 have?",
    "Solve for x: 5x - 7 = 3x + 9. Subtract 3x from both sides: 2x - 7 = 9, so x = 8.",
    "The number of ways to arrange the letters of MISSISSIPPI is 34650.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 50 100 1000 2024 2025",
    "+ - * / // % ** = == != < > <= >= ( ) [ ] { } , . : ; ' \" # \\ | & ^ ~ ! ? @ $ _",
    "import numpy as np\nimport sympy as sp\nresult = sp.simplify((x**2 - 1) / (x - 1))\nprint(result)\n",
    "if n % 2 == 0:\n    print('even')\nelse:\n    print('odd')\nwhile True:\n    break\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n",
    "<|im_start|>assistant\nThe answer is \\boxed{4}.<|im_end|>\n<|endoftext|>",
)


@functools.lru_cache(maxsize=1)
def _tokenizer_json(vocab_size: int = TINY_VOCAB_SIZE) -> str:
    """Train the BPE once per process and return its JSON (the documented process-wide cache)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(TINY_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeat the corpus so that frequent pairs (fences, keywords) clearly win merges.
    tok.train_from_iterator(list(_CORPUS) * 4, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh wrapper around the locally trained tiny byte-level BPE (deterministic, offline).

    Returns:
        A ``PreTrainedTokenizerFast`` with ``eos_token="<|endoftext|>"``, ``pad_token="<|pad|>"``,
        a chat template (:data:`TINY_CHAT_TEMPLATE`) and ``clean_up_tokenization_spaces=False``
        (so decoding never alters spaces).
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(_tokenizer_json())
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=TINY_SPECIAL_TOKENS[0],
        pad_token=TINY_SPECIAL_TOKENS[1],
        bos_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


def tiny_model(
    seed: int = 0,
    vocab_size: int | None = None,
    hidden: int = 64,
    layers: int = 2,
    *,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 2048,
) -> Qwen2ForCausalLM:
    """A randomly initialised ``Qwen2ForCausalLM`` that matches :func:`tiny_tokenizer`.

    Initialisation is seeded and does not disturb the global RNG (it runs under
    ``torch.random.fork_rng``), so the same arguments give the same weights in every call.

    Args:
        seed: seed of the weight initialisation.
        vocab_size: vocabulary size; ``None`` uses the tiny tokenizer's length.
        hidden: hidden size (the MLP is twice as wide).
        layers: number of decoder layers.
        heads: attention heads (``hidden`` must be divisible by it).
        kv_heads: key/value heads for grouped-query attention (must divide ``heads``).
        max_positions: maximum sequence length.

    Raises:
        ValueError: inconsistent sizes.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if hidden % heads or heads % kv_heads:
        raise ValueError(
            f"hidden ({hidden}) must be divisible by heads ({heads}), heads by kv_heads ({kv_heads})"
        )
    tok = tiny_tokenizer()
    vocab = len(tok) if vocab_size is None else vocab_size
    if vocab < len(tok):
        raise ValueError(
            f"vocab_size {vocab} is smaller than the tiny tokenizer's {len(tok)} tokens"
        )
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model
