"""driftstream's detectors under River's names (``drift.ADWIN``, ``drift.binary.DDM``, ...), so that tests copied
from River run against our classes with only their import line changed."""

from types import SimpleNamespace

from detectors.adwin import ADWIN
from detectors.ddm import DDM
from detectors.eddm import EDDM
from detectors.fhddm import FHDDM
from detectors.hddm_a import HDDMA
from detectors.hddm_w import HDDMW
from detectors.kswin import KSWIN
from detectors.page_hinkley import PageHinkley

drift = SimpleNamespace(
    ADWIN=ADWIN,
    KSWIN=KSWIN,
    PageHinkley=PageHinkley,
    binary=SimpleNamespace(DDM=DDM, EDDM=EDDM, FHDDM=FHDDM, HDDMA=HDDMA, HDDMW=HDDMW),
)
