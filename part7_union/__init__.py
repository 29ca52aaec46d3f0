"""(chapter in progress)"""
