"""semdyn.semantics: SAM masks and CLIP features per frame, object-ID maps, lifting onto Gaussians, a feature field.

- ``dictionary``: object dictionaries (prompt, class, static, rigid) from ``configs/dictionaries/*.yaml``.
- ``sam``, ``clip``: segment-anything and open_clip from local checkpoints (random weights only behind a flag).
- ``matching``: cosine similarity + threshold + margin -> object-IDs; ID maps painted from masks.
- ``extract``: the per-frame pipeline and its cache (``scripts/extract_semantics.py``).
- ``lifting``: the closed-form top-k vote -> per-Gaussian labels and confidences.
- ``instances``: one prompt's Gaussians split into objects by 3D connectivity.
- ``tracking``: one prompt's masks tracked across frames (track ids), tracks merged and conflicting ones split.
- ``groups``: the group table (``is_static [G]``, ``is_rigid [G]``) beside the per-Gaussian labels.
- ``training``: ``SemanticsConfig`` and the ``SemanticLifter`` the trainer holds.
- ``feature_field``: per-Gaussian latents rendered and decoded to CLIP space.
- ``query``: ``relevancy`` of features to a text query (for the viewer).
- ``evaluate``: ARI / purity of the groups against the ground-truth boxes.

Importing this package loads neither segment-anything nor open_clip (they load when a model is built).
"""
