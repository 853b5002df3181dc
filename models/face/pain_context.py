"""The face's pain score: PSPI with the actions that a smile, speech or a yawn explain set aside.

PSPI (``action_units.pspi``) counts AU6/AU7 (orbit tightening), AU9/AU10 (levator) and AU43
whatever else the face is doing. Outside a pain archive that reads every genuine smile as pain:
the Duchenne smile raises the cheeks (AU6) together with the lip corners (AU12), and the
geometric AU9/AU10 move with the lip corners and the upper lip of a broad smile. A yawn drops
the jaw (AU26) and closes or narrows the eyes (AU43, AU7). None of these lowers the brows.

Pain, on the other hand, keeps its core when it comes with a smile: the "pain smile" is AU12
together with brow lowering (AU4) and orbit tightening (AU6/AU7) (Kunz, Prkachin &
Lautenbacher 2009, "The smile of pain", Pain 145(3)). Brow lowering is the action most
consistently present in pain across studies (Kunz, Meixner & Lautenbacher 2019, "Facial muscle
movements encoding pain - a systematic review", Pain 160:535-549).

So: AU12 explains AU6, AU7, AU9 and AU10 up to its own intensity, and a dropped jaw explains AU7
and AU43 up to its own, both only to the degree that the brows are not lowered (AU4 above A
level). With AU4 at ``BROW_PAIN_FULL`` or more nothing is set aside; with no AU4 a pure smile
leaves PSPI near 0.
``action_units.pspi`` stays the plain PSPI (the UNBC-McMaster label's definition) and is
published beside this one.
"""

from __future__ import annotations

from models.face.action_units import pspi

#: AU4 intensity (0..5) below which brow lowering does not reach FACS A ("trace", 1 on this
#: scale): landmark jitter and a face's own shape reach that far, so it is no evidence of a
#: pain smile.
BROW_TRACE = 1.0
#: AU4 intensity (FACS B) from which the brows alone say "pain, whatever the mouth does".
BROW_PAIN_FULL = 2.0
#: AU26 intensity at which an open jaw fully explains closed eyes (a yawn's eyes).
JAW_EXPLAINS_CLOSURE = 2.5


def brow_pain_share(aus: dict[str, float]) -> float:
    """0..1: how far the brows are lowered towards the level that keeps every action."""
    return min(1.0, max(0.0, (aus["au4"] - BROW_TRACE) / (BROW_PAIN_FULL - BROW_TRACE)))


def explained_actions(aus: dict[str, float]) -> dict[str, float]:
    """The AUs that count for pain here (same keys as ``aus``), AU12/AU26-explained parts removed."""
    free = 1.0 - brow_pain_share(aus)
    smile = aus.get("au12", 0.0) * free
    jaw = aus.get("au26", 0.0) * free
    out = dict(aus)
    for name in ("au6", "au9", "au10"):
        out[name] = max(0.0, aus[name] - smile)
    out["au7"] = max(0.0, aus["au7"] - max(smile, jaw))
    out["au43"] = aus["au43"] * (1.0 - min(1.0, jaw / JAW_EXPLAINS_CLOSURE))
    return out


def pain_pspi(aus: dict[str, float]) -> float:
    """PSPI (0..16) of the actions smiles, speech and yawns do not explain; the face's score."""
    return pspi(explained_actions(aus))
