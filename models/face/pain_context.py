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

Until the person's own neutral face is known (uncalibrated), AU4 is read as the brows' height
against the canonical, average face, and resting brow height is a trait of the face: brows sit
lower or higher above the eyes from one person to the next by as much as a FACS B lowering
moves them (FACS scores an action by the change it makes to that person's neutral face). Read
that way, AU4 alone is no evidence of pain, and would make every smile of a low-browed person a
pain smile. Pain lowers the brows together with the other PSPI actions: they load on one factor
(Prkachin 1992, "The consistency of facial expressions of pain", Pain 51:297-306; Prkachin &
Solomon 2008), which is why PSPI sums them. So, uncalibrated, AU4 counts up to the strongest
other PSPI action that neither a smile nor an open jaw explains (orbit tightening AU6/AU7,
levator AU9/AU10, closed eyes AU43 as full closure, 5), and only that corroborated AU4 can keep
a smile's actions as a pain smile. The other actions are judged for this as if the brows said
nothing: brows that keep an action cannot then be corroborated by it. Calibrated, AU4 counts
whole, as above. The cost: uncalibrated, a pain smile whose only sign beyond the smile is the
brows reads as a smile; the estimate is flagged "uncalibrated" until the neutral face is taken.
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


def _set_aside(aus: dict[str, float], free: float) -> dict[str, float]:
    """``aus`` with the smile's and the open jaw's share of each action removed, ``free`` (0..1)
    being how far they may explain it."""
    smile = aus.get("au12", 0.0) * free
    jaw = aus.get("au26", 0.0) * free
    out = dict(aus)
    for name in ("au6", "au9", "au10"):
        out[name] = max(0.0, aus[name] - smile)
    out["au7"] = max(0.0, aus["au7"] - max(smile, jaw))
    out["au43"] = aus["au43"] * (1.0 - min(1.0, jaw / JAW_EXPLAINS_CLOSURE))
    return out


def brow_corroboration(aus: dict[str, float]) -> float:
    """0..5: the strongest other PSPI action that neither a smile nor an open jaw explains, read
    as if the brows said nothing (AU43, closed eyes, as full closure: 5)."""
    rest = _set_aside(aus, 1.0)
    return max(rest["au6"], rest["au7"], rest["au9"], rest["au10"], 5.0 * rest["au43"])


def counted_brows(aus: dict[str, float], calibrated: bool = True) -> float:
    """The AU4 that counts for pain: all of it against the person's own neutral face; against
    the canonical face only as far as another pain action corroborates it."""
    return aus["au4"] if calibrated else min(aus["au4"], brow_corroboration(aus))


def explained_actions(aus: dict[str, float], *, calibrated: bool = True) -> dict[str, float]:
    """The AUs that count for pain here (same keys as ``aus``): AU12/AU26-explained parts
    removed and, uncalibrated, AU4 down to what the other actions corroborate."""
    brows = counted_brows(aus, calibrated)
    out = _set_aside(aus, 1.0 - brow_pain_share({**aus, "au4": brows}))
    out["au4"] = brows
    return out


def pain_pspi(aus: dict[str, float], *, calibrated: bool = True) -> float:
    """PSPI (0..16) of the actions smiles, speech and yawns do not explain; the face's score.
    ``calibrated`` False: ``aus`` were read against the canonical face (see the module's text)."""
    return pspi(explained_actions(aus, calibrated=calibrated))
