"""Cross-domain orchestration, above the domain packages: a rule that joins two domains lives
here, so the domains themselves import each other in one direction only
(tests/architecture/test_imports.py). Routers and jobs call workflows; domains never do."""
