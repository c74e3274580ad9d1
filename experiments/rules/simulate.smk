# Stage rules for 'simulate' (see DESIGN.md data flow). Owned by the stage's implementer.
