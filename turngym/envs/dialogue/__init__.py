"""Dialogue environments with a rule-based user (docs/environments.md#dialogue).

* :class:`~turngym.envs.dialogue.clarify.Clarify` (``turngym/Clarify-v0``): InfoPO-style intent
  clarification ("InfoPO: Information-Driven Policy Optimization for User-Centric Agents",
  arXiv 2603.00656): an underspecified request with hidden
  slots, a simulated user who answers only what is asked, reward for the correct final action
  minus a cost per question.
* :class:`~turngym.envs.dialogue.try_again.TryAgain` (``turngym/TryAgain-v0``): "A Simple 'Try
  Again' Can Elicit Multi-Turn LLM Reasoning" (UFO, arXiv 2507.14295):
  multi-attempt puzzles with unary feedback and the attempt-discounted reward with a
  repetition penalty.
* :mod:`~turngym.envs.dialogue.domains`: the Clarify task domains, slots and value lexicons.
* :mod:`~turngym.envs.dialogue.puzzles`: the TryAgain puzzle generators and answer
  normalisation.

Modules import nothing heavy; envs are loaded lazily by their registered entry points.
"""
