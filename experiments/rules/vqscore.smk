# Stage rules for 'vqscore' (see DESIGN.md data flow). Owned by the stage's implementer.
