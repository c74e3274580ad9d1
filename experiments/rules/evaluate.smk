# Stage rules for 'evaluate' (see DESIGN.md data flow). Owned by the stage's implementer.
