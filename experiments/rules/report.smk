# Stage rules for 'report' (see DESIGN.md data flow). Owned by the stage's implementer.
