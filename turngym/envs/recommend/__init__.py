"""Recommendation environments (docs/environments.md#recommendation).

* :class:`~turngym.envs.recommend.seqrec.SeqRec` (``turngym/SeqRec-v0``): rank K candidates
  for a user from their history; NDCG@k reward, per-rank hits for Rank-GRPO / ConvRec-R1,
  candidate pool and relevant set for F-GRPO, single-turn next-item setting of LASAR.
* :class:`~turngym.envs.recommend.convrec.ConvRec` (``turngym/ConvRec-v0``): conversational
  recommendation with a rule-based simulated user (iEvaLM-style).
* :mod:`~turngym.envs.recommend.movielens`: SeqRec tasks from MovieLens files you already have.
* :mod:`~turngym.envs.recommend.catalog`: the procedural catalogue, latent-factor users, title
  matching and the ranking metrics (Recall@k, NDCG@k).

Modules import nothing heavy; envs are loaded lazily by their registered entry points.
"""
