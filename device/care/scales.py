"""Observational pain scales a nurse scores when the patient cannot self-report.

- PAINAD (Pain Assessment in Advanced Dementia; Warden et al. 2003): five items scored 0-2,
  total 0-10.
- CPOT (Critical-Care Pain Observation Tool; Gelinas et al. 2006): four items scored 0-2,
  total 0-8. The fourth item is compliance with the ventilator for an intubated patient, or
  vocalisation for one who is not: exactly one of the two is given.

Each is one command with every item's score; an item out of 0-2, missing or unknown is
refused naming the item. For the personal mapping a total is put on the 0-10 rating scale
linearly, from "no pain behaviour" (0) to the scale's maximum (10): PAINAD as it is, CPOT
times 10/8. The stored score keeps its own scale (items and total).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from device.processing.commands import CommandRefused, CommandRequest

SCALE_SCHEMA = "painmon.scale/1"


def _item(description: str):
    return Field(..., ge=0, le=2, description=f"{description} (0-2).")


class PainadRequest(CommandRequest):
    breathing: int = _item("Breathing independent of vocalisation: normal, occasional laboured "
                           "/ short hyperventilation, noisy laboured / Cheyne-Stokes")
    negative_vocalization: int = _item("None, occasional moan or groan, repeated calling out "
                                       "/ crying")
    facial_expression: int = _item("Smiling or inexpressive, sad / frightened / frown, "
                                   "grimacing")
    body_language: int = _item("Relaxed, tense / distressed pacing / fidgeting, rigid / fists "
                               "clenched / striking out")
    consolability: int = _item("No need to console, distracted or reassured by voice or "
                               "touch, unable to console")


class CpotRequest(CommandRequest):
    facial_expression: int = _item("Relaxed, tense, grimacing")
    body_movements: int = _item("Absent, protection, restlessness / agitation")
    muscle_tension: int = _item("Relaxed, tense / rigid, very tense / rigid (passive flexion "
                                "and extension of the upper limbs)")
    ventilator_compliance: int | None = Field(
        None, ge=0, le=2, description="Intubated: tolerating the ventilator, coughing but "
        "tolerating, fighting it (0-2). Give this or vocalization.")
    vocalization: int | None = Field(
        None, ge=0, le=2, description="Not intubated: normal tone or none, sighing / moaning, "
        "crying out / sobbing (0-2). Give this or ventilator_compliance.")

    @model_validator(mode="after")
    def _one_fourth_item(self) -> CpotRequest:
        given = [n for n in ("ventilator_compliance", "vocalization") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of ventilator_compliance (intubated) and "
                             f"vocalization (not intubated), got {given or 'neither'}")
        return self


#: scale -> (request model, maximum total)
SCALES: dict[str, tuple[type[CommandRequest], int]] = {"painad": (PainadRequest, 10),
                                                       "cpot": (CpotRequest, 8)}


def items_of(scale: str, request: CommandRequest) -> dict[str, int]:
    """The item scores a request carries (the CPOT's unused fourth item left out)."""
    model, _ = SCALES[scale]
    fields = [n for n in model.model_fields if n not in CommandRequest.model_fields]
    items = {n: getattr(request, n) for n in fields if getattr(request, n) is not None}
    bad = [n for n, v in items.items() if isinstance(v, bool) or not 0 <= v <= 2]
    if bad:  # the model checks this; a request built in code must not get round it
        raise CommandRefused(f"{scale} item(s) {', '.join(bad)} must be 0-2")
    return items


def rescaled_0_10(scale: str, total: int) -> float:
    """A total on the 0-10 rating scale, linearly from 0 to the scale's maximum."""
    return round(10.0 * total / SCALES[scale][1], 3)
