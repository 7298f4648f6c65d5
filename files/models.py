# Stored files and data frames arrive with the v2 API issue; the app exists so that its migrations slot in.
