"""TwentyQuestions: find the hidden everyday object with yes/no questions.

The procedural, model-free version of LMRL-Gym's *20 Questions* (Abdulhai et al., 2023;
docs/environments.md#twentyquestions-and-guessmycity), after the parlour game and Burgener's
electronic 20Q: the env
hides an object from a shipped knowledge base (``data/twenty_questions.txt``: 130 objects,
60 attributes plus first-letter questions, turngym's own compilation) and a rule-based
answerer replies ``Yes.`` or ``No.`` to exactly the question asked. The grammar, the rewards,
the oracle and the leak check are those of
:class:`~turngym.envs.games.guessing.AttributeGuessingGame`.

Example:
    >>> import gymnasium, turngym.envs
    >>> env = gymnasium.make("turngym/TwentyQuestions-v0")
    >>> _ = env.reset(options={"task": {"secret": "dog", "candidates": ["cat", "dog", "lion"]}})
    >>> print(env.step("<action>ask: hunts</action>")[0])
    Does it hunt other animals? No.
    <BLANKLINE>
    Questions left: 19 of 20.
    - Does it hunt other animals? No.
    >>> env.step("<action>Is it a dog?</action>")[1:3]
    (1.0, True)
"""

from __future__ import annotations

import functools
from typing import ClassVar

from turngym.envs.games.guessing import Attribute, AttributeGuessingGame, KnowledgeBase, read_table

__all__ = ["TwentyQuestions", "load_objects"]


@functools.cache
def load_objects() -> KnowledgeBase:
    """Load the shipped object knowledge base (attributes first, then one object per line)."""
    attributes, objects = [], []
    for row in read_table("twenty_questions.txt"):
        if row[0].startswith("@"):
            attributes.append(Attribute(row[0][1:].strip(), row[1]))
        else:
            name, *aliases = [n.strip() for n in row[0].split(";")]
            objects.append((name, aliases, set(row[1].split())))
    return KnowledgeBase.build(objects, attributes)


class TwentyQuestions(AttributeGuessingGame):
    """Twenty Questions over everyday objects (LMRL-Gym's 20Q without a language model).

    Knobs and levels are those of
    :class:`~turngym.envs.games.guessing.AttributeGuessingGame`: 0 = 10 shown candidates,
    1 = 25 (default), 2 = 50, 3 = all 130 shown, 4 = all 130 hidden (LMRL-Gym's setting).

    Leak check: the object's name and aliases, in any case or spacing and inside longer words,
    never appear in a text the agent sees before it guesses the object (the alphabetical
    candidate list of the instructions excepted).

    Example:
        >>> env = TwentyQuestions(level=4)
        >>> obs, info = env.reset(seed=0, options={"split": "test"})
        >>> info["privileged"]["candidates_left"]
        130
    """

    family: ClassVar[str] = "twentyquestions"
    thing: ClassVar[str] = "object"
    title: ClassVar[str] = "Twenty Questions"
    hidden_hint: ClassVar[str] = (
        "It is an everyday thing: an animal, a plant, a food or drink, or a man-made object."
    )
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>ask: animal</action>",
        "<action>Is it made by people?</action>",
        "<action>guess: NAME</action>",
    )

    @classmethod
    def knowledge_base(cls) -> KnowledgeBase:
        """The shipped objects (cached)."""
        return load_objects()
