"""Graph -> Graph optimisation passes: inline, dce, cse, fold, simplify."""
