"""Step functions and a crash-test driver for the PARALLEL/HTTP/SUB_WORKFLOW/LOOP/FIRE_AND_FORGET tests."""
