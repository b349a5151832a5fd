"""What a trained run reports: ``wm eval``, ``wm dream``, ``wm plan``, ``wm bench``, and the
plots, videos and frame metrics they write."""
