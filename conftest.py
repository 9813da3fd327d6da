"""Settings shared by tests/ and sim/."""

from hypothesis import settings

# Shared 2-core machines: wall-clock deadlines would make property tests flaky, not stricter.
# print_blob lets any failure be replayed exactly with @reproduce_failure.
settings.register_profile("ttaccel", deadline=None, print_blob=True)
settings.load_profile("ttaccel")
