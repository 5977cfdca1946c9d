"""The prior of T's field-of-view ratio: how many times narrower T's view is than W's.

ratio = W's width / the width T covers in W (for T of another aspect, the width of the
T-shaped rectangle of its footprint's area). It is only a prior: ``hzsr.align`` measures the
footprint and reports the ratio it found. Sources, in order of trust: an explicit value; the
ratio of the 35 mm-equivalent focal lengths in EXIF (T / W); none (unknown, ``hzsr.align``
searches all ratios). T's pixel density (T px per W px) may differ from it; align measures it.
An EXIF ratio above ``max_ratio`` (or below its inverse) is implausible for a camera pair (a
focal length of 100000 mm in a file gives 3846) and is ignored with a note.
"""
from __future__ import annotations

import math

from nodegraph import Out, Param, Scalar, node, note
from nodegraph.errors import InputError


def resolve_ratio(wide_focal_35mm: float | None, tele_focal_35mm: float | None,
                  override: float | None, max_ratio: float = 20.0) -> tuple[float | None, str]:
    """(prior or None, sentence naming its source): override > EXIF focal ratio > none.

    An EXIF ratio above ``max_ratio`` or below ``1 / max_ratio`` is ignored with a note; any
    other ratio above ``max_ratio``, or below 1, raises InputError.
    """
    exif_ratio, exif_source, without_exif = None, "", "no EXIF focal lengths"
    if wide_focal_35mm and tele_focal_35mm:
        exif_ratio = float(tele_focal_35mm) / float(wide_focal_35mm)
        exif_source = (f"from the EXIF 35 mm focal lengths ({tele_focal_35mm:g} mm / "
                       f"{wide_focal_35mm:g} mm)")
    if override is None and exif_ratio is not None and not 1 / max_ratio <= exif_ratio <= max_ratio:
        note(f"ignoring the field-of-view ratio {exif_ratio:.4g} {exif_source}: not a plausible "
             f"camera pair (parameter max_ratio: {max_ratio:g})")
        exif_ratio, without_exif = None, "implausible EXIF focal lengths"
    if override is not None:
        ratio, source = float(override), "given explicitly"
    elif exif_ratio is not None:
        ratio, source = exif_ratio, exif_source
    else:
        return None, f"unknown ({without_exif}): registration searches all ratios"
    if not ratio >= 1.0:
        raise InputError(f"field-of-view ratio {ratio:.4g} ({source}) is below 1: T must be the "
                         "narrower view; swapped inputs?")
    if not ratio <= max_ratio:
        raise InputError(f"field-of-view ratio {ratio:.4g} ({source}) is above {max_ratio:g}, the "
                         "largest accepted (parameter max_ratio)")
    return ratio, source


# T is the narrower view, so a given ratio below 1 (or not finite) is refused before any work.
RATIO = Scalar.within(1.0, math.inf)


# Bypassed, the node passes the given ratio through (never a focal length, the default rule's
# first Scalar input); without one the prior is unknown and hzsr.align searches.
@node("hzsr.ratio", version=2, bypass={"ratio": "ratio"})
def ratio(wide_focal_35mm: Scalar = None, tele_focal_35mm: Scalar = None,
          ratio: RATIO = None, *,
          max_ratio: float = Param(20.0, range=(1.0, 100.0),
                                   doc="largest plausible ratio; EXIF focal lengths giving more, "
                                       "or less than its inverse, are ignored (with a note)")
          ) -> Out(ratio=Scalar):
    """Prior of T's field-of-view ratio (W width / width T covers in W, 1..max_ratio) or None.

    override > EXIF focal ratio (T / W) > None (unknown). A prior only: hzsr.align measures
    the footprint, starting its search here. Notes which source was used, and an EXIF ratio
    above ``max_ratio`` that it ignored.
    """
    value, source = resolve_ratio(wide_focal_35mm, tele_focal_35mm, ratio, max_ratio)
    note(f"field-of-view ratio prior {value:.4g} {source}" if value is not None
         else f"field-of-view ratio prior {source}")
    return value
