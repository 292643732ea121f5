"""The Linux LIO front end: the plan of what LIO holds (``plan``) and its rtslib-fb gateway (``gateway``)."""
