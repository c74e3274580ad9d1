# Stage rules for 'enhance' (see DESIGN.md data flow). Owned by the stage's implementer.
