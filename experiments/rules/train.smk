# Stage rules for 'train' (see DESIGN.md data flow). Owned by the stage's implementer.
