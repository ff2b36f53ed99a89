"""``forklift run``'s machinery: templates, inputs, the job loop, the joblog, the guardian."""
