"""Real labelled data sets, converted into the layout every study of the project uses."""
